/**
 * An epoch announcement: the details of a `keys.channel_epoch` ledger event, produced only by
 * the key manager (DESIGN §3a). Each announcement names its channel, its epoch (the previous
 * one's + 1, from 1), the hash of the previous announcement of the channel (so a replayed,
 * reordered or dropped announcement does not link), why the epoch began, and the epoch key
 * wrapped to every subscriber of the epoch (wrap.ts). Whoever is not in `subscribers` does not
 * get this epoch's key: that is what revocation means here.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { isValidId } from '@bulwark/envelope';
import { canonicalJson, type JsonObject } from '@bulwark/events';
import { ChannelError } from './errors.js';
import { WRAP_LENGTH } from './wrap.js';

export const EPOCH_REASONS = ['created', 'subscriber_added', 'subscriber_revoked', 'subscriber_rekeyed', 'interval', 'on_demand'] as const;
export type EpochReason = (typeof EPOCH_REASONS)[number];

export interface EpochWrap {
  readonly id: string;
  /** The directory key version whose X25519 key the wrap is for. */
  readonly keyVersion: number;
  readonly wrap: Uint8Array;
}

export interface EpochAnnouncement {
  readonly channel: string;
  readonly epoch: number;
  /** Hex SHA-256 of the previous announcement (announcementHash), null for epoch 1. */
  readonly previous: string | null;
  readonly reason: EpochReason;
  /** The subscriber the change is about (added, revoked, rekeyed), null otherwise. */
  readonly subject: string | null;
  /** When the epoch began (ms): a publisher seals under it from then on. */
  readonly at: number;
  /** The principal that wrapped the keys, and the X25519 key it used (wrap.ts `ss`). */
  readonly issuer: string;
  readonly issuerKeyVersion: number;
  readonly issuerPublicKey: Uint8Array;
  /** Sorted by id, one per subscriber. */
  readonly subscribers: readonly EpochWrap[];
  /** The administrator (or service) behind the change: a claim of the issuer. */
  readonly by: string;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

export function announcementDetails(a: EpochAnnouncement): JsonObject {
  return {
    channel: a.channel,
    epoch: a.epoch,
    previous: a.previous,
    reason: a.reason,
    subject: a.subject,
    at: a.at,
    issuer: a.issuer,
    issuerKeyVersion: a.issuerKeyVersion,
    issuerPublicKey: b64(a.issuerPublicKey),
    subscribers: a.subscribers.map((s) => ({ id: s.id, keyVersion: s.keyVersion, wrap: b64(s.wrap) })),
    by: a.by,
  };
}

/** Hex SHA-256 of the announcement's RFC 8785 form: what the next epoch's `previous` names. */
export function announcementHash(provider: CryptoProvider, a: EpochAnnouncement): string {
  return Buffer.from(provider.sha256(new TextEncoder().encode(canonicalJson(announcementDetails(a))))).toString('hex');
}

const FIELDS = ['at', 'by', 'channel', 'epoch', 'issuer', 'issuerKeyVersion', 'issuerPublicKey', 'previous', 'reason', 'subject', 'subscribers'].join();

function bytes(value: unknown, length: number): Uint8Array | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined;
  const out = new Uint8Array(Buffer.from(value, 'base64'));
  return out.length === length && b64(out) === value ? out : undefined;
}

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

/** The announcement in `details`, strictly (every field, nothing else), or E_CHANNEL_ANNOUNCEMENT naming the first problem. */
export function parseAnnouncement(details: JsonObject): EpochAnnouncement {
  const bad = (why: string): never => {
    throw new ChannelError('E_CHANNEL_ANNOUNCEMENT', `keys.channel_epoch: ${why}`, { channel: typeof details['channel'] === 'string' ? details['channel'].slice(0, 128) : null });
  };
  const got = Object.keys(details).sort().join();
  if (got !== FIELDS) bad(`details have fields ${got}, expected ${FIELDS}`);
  const d = details as Record<string, unknown>;
  const id = (v: unknown, name: string): string => (typeof v === 'string' && isValidId(v) ? v : bad(`${name} is not a valid id`));
  const channel = id(d['channel'], 'channel');
  const epoch = positive(d['epoch']) ? d['epoch'] : bad('epoch is not a positive integer');
  const previous = d['previous'] === null ? null : typeof d['previous'] === 'string' && /^[0-9a-f]{64}$/.test(d['previous']) ? d['previous'] : bad('previous is not null or a hex SHA-256');
  if ((epoch === 1) !== (previous === null)) bad(epoch === 1 ? 'epoch 1 names a previous announcement' : `epoch ${epoch} names no previous announcement`);
  const reason = (EPOCH_REASONS as readonly unknown[]).includes(d['reason']) ? (d['reason'] as EpochReason) : bad(`reason is not one of ${EPOCH_REASONS.join(', ')}`);
  const subject = d['subject'] === null ? null : id(d['subject'], 'subject');
  const at = typeof d['at'] === 'number' && Number.isSafeInteger(d['at']) && d['at'] >= 0 ? d['at'] : bad('at is not a time in ms');
  const issuer = id(d['issuer'], 'issuer');
  const issuerKeyVersion = positive(d['issuerKeyVersion']) ? d['issuerKeyVersion'] : bad('issuerKeyVersion is not a positive integer');
  const issuerPublicKey = bytes(d['issuerPublicKey'], 32) ?? bad('issuerPublicKey is not the base64 of 32 bytes');
  const by = id(d['by'], 'by');
  if (!Array.isArray(d['subscribers'])) bad('subscribers is not a list');
  const subscribers = (d['subscribers'] as unknown[]).map((s, i): EpochWrap => {
    if (typeof s !== 'object' || s === null || Array.isArray(s) || Object.keys(s).sort().join() !== 'id,keyVersion,wrap') bad(`subscribers[${i}] is not { id, keyVersion, wrap }`);
    const o = s as Record<string, unknown>;
    return {
      id: id(o['id'], `subscribers[${i}].id`),
      keyVersion: positive(o['keyVersion']) ? o['keyVersion'] : bad(`subscribers[${i}].keyVersion is not a positive integer`),
      wrap: bytes(o['wrap'], WRAP_LENGTH) ?? bad(`subscribers[${i}].wrap is not the base64 of a ${WRAP_LENGTH}-byte wrap`),
    };
  });
  for (let i = 1; i < subscribers.length; i++) if (subscribers[i - 1]!.id >= subscribers[i]!.id) bad('subscribers are not sorted by id without repeats');
  return { channel, epoch, previous, reason, subject, at, issuer, issuerKeyVersion, issuerPublicKey, subscribers, by };
}

/**
 * Whether `next` may follow `last` on its channel (undefined: the channel has no epoch yet):
 * the next number and a link to exactly `last`. A replayed announcement (an epoch already
 * seen), a reordered one (a later epoch first) or one forked from an older epoch fails here.
 */
export function checkSuccessor(provider: CryptoProvider, last: EpochAnnouncement | undefined, next: EpochAnnouncement): void {
  const where = { channel: next.channel, epoch: next.epoch };
  if (last === undefined) {
    if (next.epoch !== 1) throw new ChannelError('E_CHANNEL_ANNOUNCEMENT', `channel ${next.channel}: epoch ${next.epoch} announced before epoch 1`, where);
    return;
  }
  if (next.epoch !== last.epoch + 1) throw new ChannelError('E_CHANNEL_ANNOUNCEMENT', `channel ${next.channel}: epoch ${next.epoch} announced after epoch ${last.epoch} (replayed or out of order)`, where);
  if (next.previous !== announcementHash(provider, last)) throw new ChannelError('E_CHANNEL_ANNOUNCEMENT', `channel ${next.channel}: epoch ${next.epoch} does not link to epoch ${last.epoch}'s announcement`, where);
  if (next.at < last.at) throw new ChannelError('E_CHANNEL_ANNOUNCEMENT', `channel ${next.channel}: epoch ${next.epoch} begins before epoch ${last.epoch}`, where);
}
