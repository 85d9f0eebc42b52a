/**
 * A rotation requested on `compromise` (`keys.rotation_requested`, reason `compromise`) takes
 * the reported version out of verification once its holder rotated: this commits
 * `keys.min_version_raised` (the reported version + 1) a short `delayMs` after the holder's
 * rotation was certified, so that the old version stops verifying everywhere (every service's
 * LedgerKeys) and its NATS user is revoked on the bus.
 *
 * Why after the rotation and not in the same fact (as a `keys.rotated` with trigger `compromise`
 * does): the holder keeps sealing under its old version until it switched (its directory serves
 * the new entry, then `SWITCH_SETTLE_MS` of @bulwark/client), and the ledger and its peers would
 * refuse those frames (its audit events among them) if the minimum rose at the rotation itself.
 * Why not earlier: before the holder rotated, a raised minimum would leave it with no version that
 * verifies (the holder could no longer ask for its rotation: that is `revoke`).
 *
 * What is due is derived from the key book alone (`compromiseRaiseDue`), so a key manager that
 * restarts, or another instance, finds the same raise due and commits it; the book applies a
 * second copy harmlessly (the minimum only rises, to the same value).
 */
import type { EventPublisher } from '@bulwark/bus';
import { encodeEvent, newEvent } from '@bulwark/events';
import { factDetails, type KeyBook } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';
import { FACT_SUBJECTS } from './handlers.js';

export interface CompromiseRaisesOptions {
  /** The key book (a getter: the projection holding it starts after this). */
  readonly book: () => KeyBook;
  readonly events: EventPublisher;
  /** The key manager's own principal (`by` of the fact). */
  readonly self: string;
  /** How long after the holder's rotation the minimum is raised. */
  readonly delayMs: number;
  readonly now: () => number;
  readonly logger?: Logger;
}

export interface CompromiseRaises {
  /** Looks at one principal (after a fact about it was applied): schedules its raise if one is due. */
  consider(principal: string): void;
  /** Looks at every principal (at start and on the reconcile interval: a lost event is sent again). */
  reconcile(): void;
  stop(): void;
}

/** A published raise not seen applied after this long is sent again at the next reconcile. */
const RESEND_AFTER_MS = 10_000;

export function startCompromiseRaises(options: CompromiseRaisesOptions): CompromiseRaises {
  const { events, logger } = options;
  const timers = new Map<string, NodeJS.Timeout>();
  /** principal → when its raise was published (not applied yet). */
  const sent = new Map<string, number>();
  let stopped = false;

  const raise = (principal: string): void => {
    timers.delete(principal);
    const min = options.book().compromiseRaiseDue(principal);
    if (stopped || min === undefined) return;
    const fact = { type: 'keys.min_version_raised', principal, by: options.self, min } as const;
    try {
      options.book().check(fact);
    } catch (e) {
      logger?.warn({ err: e, principal, min }, 'compromise: the minimum verify version cannot be raised');
      return;
    }
    sent.set(principal, options.now());
    const event = newEvent({ agentId: principal, eventType: fact.type, details: factDetails(fact) });
    logger?.warn({ principal, min }, 'compromise: the holder rotated; raising the minimum verify version past the reported version');
    events.publish({ subject: FACT_SUBJECTS[fact.type], eventId: event.eventId, payload: encodeEvent(event) }).catch((e: unknown) => {
      sent.delete(principal);
      logger?.warn({ err: e, principal }, 'compromise: the minimum verify version raise was not published; retried at the next reconcile');
    });
  };

  const consider = (principal: string): void => {
    const min = options.book().compromiseRaiseDue(principal);
    if (min === undefined) sent.delete(principal);
    if (stopped || min === undefined || timers.has(principal)) return;
    const last = sent.get(principal);
    if (last !== undefined && options.now() - last < RESEND_AFTER_MS) return;
    // Counted from the successor's creation (the certified rotation), so a restart does not wait again.
    const rotatedAt = options.book().key(principal)?.versions[min - 1]?.created ?? options.now();
    const wait = Math.max(0, rotatedAt + options.delayMs - options.now());
    const timer = setTimeout(() => raise(principal), wait);
    timer.unref();
    timers.set(principal, timer);
  };

  return {
    consider,
    reconcile: () => {
      for (const key of options.book().principals()) consider(key.id);
    },
    stop: () => {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
