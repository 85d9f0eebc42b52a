/**
 * Channels (issue 12 "Channels", DESIGN §3 channel mode): `bulwark.keys.channel` creates a
 * channel, adds or revokes a subscriber, or rotates its epoch; each change is a new epoch whose
 * key is wrapped to every subscriber (@bulwark/channel) and announced as a `keys.channel_epoch`
 * ledger event. As with every key fact, the change takes effect only when the verified reader
 * hands the committed event back (`apply`), so the state is rebuilt from the ledger alone.
 *
 * New epochs also begin without a command: on an interval (`rotationIntervalMs`), when a
 * subscriber's key is revoked (it is dropped from every channel) and when a subscriber rotates
 * its key (the next epoch is wrapped to its new key).
 */
import { Commands, Events, type CommandHandler, type CommandSubject, type EventPublisher } from '@bulwark/bus';
import { announceEpoch, announcementDetails, ChannelBook, ChannelError, parseAnnouncement, type ChannelChange, type EpochAnnouncement, type SubscriberKey } from '@bulwark/channel';
import type { CryptoProvider } from '@bulwark/crypto';
import { isValidId, type Directory } from '@bulwark/envelope';
import { encodeEvent, newEvent, type LedgerEvent } from '@bulwark/events';
import { activeVersion, AppliedEvents, KeyLifecycleError, type KeyBook, type KeyFact } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';
import type { ConfiguredChannel } from './config.js';

export const DEFAULT_CHANNEL_ROTATION_MS = 24 * 3600 * 1000;

class ChannelCommandError extends KeyLifecycleError {}

export type ChannelOutcome = { readonly kind: 'applied'; readonly announcement: EpochAnnouncement } | { readonly kind: 'refused'; readonly why: string; readonly code: string };

export interface ChannelDeskOptions {
  readonly provider: CryptoProvider;
  /** svc.key-manager's X25519 identity: it authenticates every wrap (wrap.ts `ss`). */
  readonly identity: { readonly id: string; readonly version: number; readonly x25519: { readonly secretKey: Uint8Array; readonly publicKey: Uint8Array } };
  readonly directory: Directory;
  /** The key state: a subscriber's active X25519 key, when the key manager holds its versions. */
  readonly keys: () => KeyBook;
  readonly events: EventPublisher;
  readonly admins: readonly string[];
  readonly applyWaitMs: number;
  readonly now: () => number;
  readonly halted: () => { code: string; seq: number } | undefined;
  readonly rotationIntervalMs?: number;
  /**
   * Channels the deployment needs (`SYMBIONT_KEY_CHANNELS`): each is created with these
   * subscribers once the state is rebuilt, if the ledger has no epoch of it yet (and tried again
   * at each rotation check while that fails, e.g. a subscriber without a directory entry yet).
   * A channel's `kinds` (`analyst.*`) take in every principal of the kind with an active key:
   * at creation, and each one enrolled later (live `keys.enrolled`). Not at each check: a
   * member an administrator removed by hand (`keys channel revoke`) must stay out.
   */
  readonly ensure?: readonly ConfiguredChannel[];
  readonly logger?: Logger;
}

export interface ChannelView {
  readonly channel: string;
  readonly epoch: number;
  readonly reason: string;
  readonly subject: string | null;
  readonly at: string;
  readonly subscribers: readonly { id: string; keyVersion: number }[];
}

function viewOf(a: EpochAnnouncement): ChannelView {
  return { channel: a.channel, epoch: a.epoch, reason: a.reason, subject: a.subject, at: new Date(a.at).toISOString(), subscribers: a.subscribers.map((s) => ({ id: s.id, keyVersion: s.keyVersion })) };
}

export class ChannelDesk {
  readonly book: ChannelBook;
  readonly #o: ChannelDeskOptions;
  #chain: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  readonly #applied = new AppliedEvents<ChannelOutcome>();

  constructor(options: ChannelDeskOptions) {
    this.#o = options;
    this.book = new ChannelBook(options.provider);
  }

  /** A committed `keys.channel_epoch` from the verified reader. An announcement that does not follow its channel's last one is skipped, as every subscriber's key ring skips it. */
  apply(event: LedgerEvent): ChannelOutcome {
    let outcome: ChannelOutcome;
    try {
      const announcement = parseAnnouncement(event.details);
      this.book.apply(announcement);
      outcome = { kind: 'applied', announcement };
    } catch (e) {
      if (!(e instanceof ChannelError)) throw e;
      outcome = { kind: 'refused', why: e.message, code: e.code };
      this.#o.logger?.warn({ eventId: event.eventId, seq: event.seq, why: e.message }, 'channel epoch committed but not applied');
    }
    this.#applied.settle(event.eventId, outcome);
    return outcome;
  }

  /** One change at a time per instance: two local changes never plan against the same epoch. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** The key an epoch is wrapped to: the subscriber's active version in the key state, else its directory entry. */
  #subscriberKey(id: string): SubscriberKey {
    const key = this.#o.keys().key(id);
    const active = key === undefined ? undefined : activeVersion(key);
    if (active !== undefined) return { id, keyVersion: active.version, x25519PublicKey: new Uint8Array(Buffer.from(active.keys.x25519, 'base64')) };
    const entry = key === undefined ? this.#o.directory.lookup(id) : undefined;
    if (entry === undefined) throw new ChannelCommandError('E_CHANNEL_SUBSCRIBER', `keys.channel: ${id} has no active key (no valid directory entry): an epoch key cannot be wrapped to it`, { subscriber: id });
    return { id, keyVersion: entry.keyVersion, x25519PublicKey: entry.x25519PublicKey };
  }

  /** Plans the change, wraps a fresh epoch key to its subscribers, announces it, and waits for the committed copy. */
  change(change: ChannelChange, by: string): Promise<EpochAnnouncement> {
    return this.#serial(async () => {
      const halt = this.#o.halted();
      if (halt !== undefined) throw new ChannelCommandError('E_KEYS_HALTED', `key manager: its ledger reader halted (${halt.code} at seq ${halt.seq}); no channel change is made`, {});
      let planned;
      try {
        planned = this.book.plan(change);
      } catch (e) {
        if (e instanceof ChannelError) throw new ChannelCommandError(e.code, `keys.channel: ${e.message}`, e.context);
        throw e;
      }
      const subscribers = planned.subscribers.map((id) => this.#subscriberKey(id));
      const { identity } = this.#o;
      const announcement = announceEpoch(this.#o.provider, { id: identity.id, keyVersion: identity.version, x25519: identity.x25519 }, { ...planned, subscribers, at: this.#o.now(), by });
      const event = newEvent({ agentId: identity.id, eventType: 'keys.channel_epoch', details: announcementDetails(announcement) });
      const wait = this.#applied.wait(event.eventId, this.#o.applyWaitMs);
      try {
        await this.#o.events.publish({ subject: Events.keys.channelEpoch, eventId: event.eventId, payload: encodeEvent(event) });
        const outcome = await wait.promise;
        if (outcome === undefined) throw new ChannelCommandError('E_KEYS_PENDING', `keys.channel_epoch for ${change.channel} was sent to the ledger but has not come back applied within ${this.#o.applyWaitMs} ms`, { eventId: event.eventId });
        if (outcome.kind === 'refused') throw new ChannelCommandError(outcome.code, `keys.channel_epoch for ${change.channel} was committed but not applied: ${outcome.why}`, { eventId: event.eventId });
        return outcome.announcement;
      } finally {
        wait.cancel();
      }
    });
  }

  /**
   * After a key fact was applied (live): a revoked subscriber leaves its channels, a rotated one
   * gets the next epoch under its new key, an enrolled one joins the configured channels that
   * take its kind.
   */
  onKeyFact(fact: KeyFact): void {
    const principal = fact.principal;
    if (fact.type === 'keys.enrolled') this.#joinByKind([principal]);
    const channels = this.book.channelsOf(principal);
    if (channels.length === 0) return;
    const key = this.#o.keys().key(principal);
    const cutOff = fact.type === 'keys.revoked' || fact.type === 'keys.min_version_raised' || fact.type === 'keys.disabled' || fact.type === 'keys.deleted';
    for (const channel of channels) {
      let change: ChannelChange | undefined;
      if (cutOff && (key === undefined || activeVersion(key) === undefined)) change = { action: 'revoke', channel, subscriber: principal };
      else if (fact.type === 'keys.rotated') change = { action: 'rotate', channel, reason: 'subscriber_rekeyed', subject: principal };
      if (change === undefined) continue;
      this.change(change, this.#o.identity.id).catch((e: unknown) => this.#o.logger?.error({ err: e, channel, principal }, `key manager: the new epoch of ${channel} after ${fact.type} of ${principal} failed`));
    }
  }

  /** The principals of `kinds` with an active key in the key state (enrolled through this service, not cut off). */
  #activeOfKinds(kinds: readonly string[]): string[] {
    return this.#o.keys().principals().filter((k) => kinds.some((kind) => k.id.startsWith(`${kind}.`)) && activeVersion(k) !== undefined).map((k) => k.id);
  }

  /** Adds each of `principals` that has an active key to the existing configured channels taking its kind, one epoch per addition. */
  #joinByKind(principals: readonly string[]): void {
    for (const { channel, kinds = [] } of this.#o.ensure ?? []) {
      if (kinds.length === 0 || this.book.last(channel) === undefined) continue;
      const members = this.book.subscribers(channel);
      for (const subscriber of this.#activeOfKinds(kinds).filter((p) => principals.includes(p) && !members.includes(p))) {
        this.change({ action: 'add', channel, subscriber }, this.#o.identity.id).catch((e: unknown) => this.#o.logger?.warn({ err: e, channel, subscriber }, 'key manager: adding an enrolled principal to a channel failed; tried again at the next check'));
      }
    }
  }

  /** Creates the configured channels that have no epoch yet (with the active principals of their kinds). */
  ensureConfigured(): void {
    for (const { channel, subscribers, kinds = [] } of this.#o.ensure ?? []) {
      if (this.book.last(channel) !== undefined) continue;
      this.change({ action: 'create', channel, subscribers: [...subscribers, ...this.#activeOfKinds(kinds)] }, this.#o.identity.id).catch((e: unknown) => this.#o.logger?.warn({ err: e, channel }, 'key manager: a configured channel could not be created yet; tried again at the next check'));
    }
  }

  /** Creates the configured channels, then starts the interval rotation (checked every tenth of the interval, at most every minute). */
  startRotation(): void {
    this.ensureConfigured();
    const interval = this.#o.rotationIntervalMs ?? DEFAULT_CHANNEL_ROTATION_MS;
    if (interval <= 0) return;
    this.#timer = setInterval(() => this.rotateDue(), Math.min(60_000, Math.max(100, Math.floor(interval / 10))));
    this.#timer.unref();
  }

  /** Rotates every channel whose epoch is older than the interval. */
  rotateDue(): void {
    this.ensureConfigured();
    const interval = this.#o.rotationIntervalMs ?? DEFAULT_CHANNEL_ROTATION_MS;
    const now = this.#o.now();
    for (const a of this.book.channels()) {
      if (now - a.at < interval) continue;
      this.change({ action: 'rotate', channel: a.channel, reason: 'interval' }, this.#o.identity.id).catch((e: unknown) => this.#o.logger?.warn({ err: e, channel: a.channel }, 'key manager: interval rotation of a channel failed; retried at the next check'));
    }
  }

  stop(): Promise<unknown> {
    clearInterval(this.#timer);
    return this.#chain;
  }

  /** `bulwark.keys.channel`: `{ action: get | list | create | add | revoke | rotate, channel, subscriber?, subscribers? }`. */
  handlers(): { [S in CommandSubject]?: CommandHandler } {
    const handler: CommandHandler = async (req) => {
      const b = parseBody(req.body);
      const action = b['action'];
      if (action === 'list') return json({ channels: this.book.channels().map(viewOf) });
      const channel = idField(b, 'channel');
      if (action === 'get') {
        const last = this.book.last(channel);
        if (last === undefined) throw new ChannelCommandError('E_CHANNEL_STATE', `keys.channel: no channel ${channel}`, { channel });
        return json(viewOf(last));
      }
      if (!this.#o.admins.includes(req.peer)) throw new ChannelCommandError('E_KEYS_FORBIDDEN', `keys.channel ${String(action)}: principal ${req.peer} is not a key administrator`, { peer: req.peer });
      let change: ChannelChange;
      switch (action) {
        case 'create': {
          const subs = b['subscribers'];
          if (!Array.isArray(subs) || subs.some((s) => typeof s !== 'string' || !isValidId(s))) throw new ChannelCommandError('E_KEYS_REQUEST', 'keys.channel create: "subscribers" must be a list of principal ids', {});
          change = { action, channel, subscribers: subs as string[] };
          break;
        }
        case 'add':
        case 'revoke':
          change = { action, channel, subscriber: idField(b, 'subscriber') };
          break;
        case 'rotate':
          change = { action, channel, reason: 'on_demand' };
          break;
        default:
          throw new ChannelCommandError('E_KEYS_REQUEST', `keys.channel: "action" must be one of get, list, create, add, revoke, rotate (got ${JSON.stringify(action)?.slice(0, 40)})`, {});
      }
      return json(viewOf(await this.change(change, req.peer)));
    };
    return { [Commands.keys.channel]: handler };
  }
}

function parseBody(bytes: Uint8Array): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new ChannelCommandError('E_KEYS_REQUEST', 'keys.channel: the body must be a JSON object', {});
}

function idField(b: Record<string, unknown>, name: string): string {
  const v = b[name];
  if (typeof v !== 'string' || !isValidId(v)) throw new ChannelCommandError('E_KEYS_REQUEST', `keys.channel: "${name}" must be an id (1-128 of A-Z a-z 0-9 . _ : @ -)`, {});
  return v;
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
