import { JetStreamApiError } from '@nats-io/jetstream';
import type { StreamKey } from './subjects.js';

/**
 * Size limits of one stream (DESIGN §3a: every stream has byte and message-size limits and a
 * discard policy that fails secure). The streams use discard **new**: once a limit is
 * reached the server refuses the next publish (`E_BUS_STREAM_FULL`) and keeps what it holds.
 */
export interface StreamLimits {
  /** Bytes the stream may hold (messages with headers and subjects, as the server counts them). */
  readonly maxBytes: number;
  /** Messages the stream may hold. */
  readonly maxMessages: number;
  /** Largest message the stream accepts (a larger one is refused, whatever space is left). */
  readonly maxMessageSize: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * Defaults for a small deployment (one machine, about 5.3 GiB of JetStream file storage in all);
 * `[bus]` in @bulwark/config overrides them, and its defaults are these numbers.
 * - events: the ledger's inbox (a work queue: it holds the ledger's backlog). 1 GiB is ~2.5 days
 *   of a ledger outage at 10 decisions/s (~0.5 KB each), ~35 minutes at 1 000/s; a message is at
 *   most NATS's default max_payload (1 MiB).
 * - ledger: every committed event, kept forever (the ledger's database is the source of
 *   truth; the stream is what projections replay). The republisher's chunks are ≤ 512 KiB.
 * - incidents: the SOC stream, 90 days.
 */
export const DEFAULT_STREAM_LIMITS: Readonly<Record<StreamKey, StreamLimits>> = Object.freeze({
  events: { maxBytes: 1 * GiB, maxMessages: 1_000_000, maxMessageSize: 1 * MiB },
  ledger: { maxBytes: 4 * GiB, maxMessages: 10_000_000, maxMessageSize: 1 * MiB },
  incidents: { maxBytes: 256 * MiB, maxMessages: 100_000, maxMessageSize: 256 * KiB },
});

/** Limits of the directory KV bucket (its stream `KV_BULWARK_DIRECTORY`); values are signed entries under 300 bytes. */
export interface DirectoryLimits {
  readonly maxBytes: number;
  /** Revisions held over all keys (each key keeps at most DIRECTORY_HISTORY of them). */
  readonly maxMessages: number;
  /** Largest value accepted. */
  readonly maxValueSize: number;
}

export const DEFAULT_DIRECTORY_LIMITS: DirectoryLimits = Object.freeze({ maxBytes: 64 * MiB, maxMessages: 100_000, maxValueSize: 1 * KiB });

/** What a refused publish ran into. */
export type FullLimit = 'bytes' | 'messages' | 'storage';

/** JetStream's "store failed" code: the server refused to store the message (the text says why). */
const JS_STORE_FAILED = 10077;
/** JetStream's "insufficient resources": the server (or account) has no storage left. */
const JS_INSUFFICIENT_RESOURCES = 10023;
/** JetStream's "message size exceeds maximum allowed" (the stream's max_msg_size). */
const JS_MESSAGE_TOO_LARGE = 10054;

/**
 * Classifies a publish failure: which limit of a full stream refused it, or undefined when
 * the failure is something else. NATS 2.9.10 answers a publish to a full discard-new stream
 * with err_code 10077 and "maximum bytes exceeded" / "maximum messages exceeded".
 */
export function fullLimitOf(cause: unknown): FullLimit | undefined {
  if (!(cause instanceof JetStreamApiError)) return undefined;
  if (cause.code === JS_INSUFFICIENT_RESOURCES) return 'storage';
  if (cause.code !== JS_STORE_FAILED) return undefined;
  if (/maximum bytes exceeded/i.test(cause.message)) return 'bytes';
  if (/maximum messages( per subject)? exceeded/i.test(cause.message)) return 'messages';
  return undefined;
}

/** True when the stream refused the message for its size (max_msg_size). */
export function isMessageTooLarge(cause: unknown): boolean {
  return cause instanceof JetStreamApiError && cause.code === JS_MESSAGE_TOO_LARGE;
}
