export type { RejectionReason, Rejection } from './errors.js';
export { EnvelopeError } from './errors.js';
export type { Clock, EnvelopeOptions, LocalIdentity, Opened, OpenOptions, OpenResult } from './options.js';
export { DEFAULT_SKEW_MS } from './options.js';
export type { FrameSummary } from './frame.js';
export { Mode, FRAME_VERSION, DEFAULT_MAX_FRAME_SIZE, MIN_FRAME_SIZE, SESSION_ID_LENGTH, inspectFrame } from './frame.js';
export { MAX_ID_LENGTH, isValidId } from './ids.js';
export { REPLAY_WINDOW_SIZE } from './replay-window.js';
export type { Directory, DirectoryEntry, SignedDirectoryEntry, EntryVerdict, EntryRejectionReason, TrustedDirectoryOptions } from './directory.js';
export {
  TrustedDirectory,
  encodeDirectoryEntry,
  decodeDirectoryEntry,
  signDirectoryEntry,
  verifyDirectoryEntry,
  encodeSignedDirectoryEntry,
  decodeSignedDirectoryEntry,
} from './directory.js';
export type { SessionOptions, SessionInitiatorOptions, SessionResponderOptions, PendingSession, AcceptResult, SessionOpenResult } from './session.js';
export { Session, SessionResponder, initiateSession, DEFAULT_SESSION_MAX_AGE_MS } from './session.js';
export type { SealedSenderOptions, SealedReceiverOptions } from './sealed.js';
export { SealedSender, SealedReceiver, DEFAULT_EPOCH_MAX_MESSAGES, DEFAULT_EPOCH_MAX_AGE_MS } from './sealed.js';
export type { ChannelEpochKey, ChannelSenderOptions, ChannelReceiverOptions, StreamReceiver } from './channel.js';
export {
  ChannelSender,
  ChannelReceiver,
  SealedOrChannelReceiver,
  createChannelEpochKey,
  encodeChannelEpochKey,
  decodeChannelEpochKey,
  wrapChannelEpochKey,
  unwrapChannelEpochKey,
} from './channel.js';
