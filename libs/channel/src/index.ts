export { ChannelError, type ChannelErrorCode } from './errors.js';
export { EPOCH_KEY_LENGTH, WRAP_LENGTH, wrapEpochKey, unwrapEpochKey, type WrapBinding } from './wrap.js';
export {
  EPOCH_REASONS,
  announcementDetails,
  announcementHash,
  checkSuccessor,
  parseAnnouncement,
  type EpochAnnouncement,
  type EpochReason,
  type EpochWrap,
} from './announcement.js';
export { announceEpoch, type ChannelIssuerIdentity, type NewEpoch, type SubscriberKey } from './issuer.js';
export { ChannelBook, type ChannelChange, type PlannedEpoch } from './book.js';
export { CHANNEL_EPOCH_EVENT, CHANNEL_ISSUER, ChannelKeyring, directoryIssuerKey, principalKeyring, type KeyringOptions, type KeyringOutcome } from './keyring.js';
export { CHANNEL_EPOCH_TYPES, followChannelEpochs, followChannels, type ChannelEpochFollower, type ChannelFollower, type FollowChannelEpochsOptions, type FollowChannelsOptions } from './follow.js';
