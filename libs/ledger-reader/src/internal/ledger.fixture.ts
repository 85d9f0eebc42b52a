// An in-memory ledger for the reader's unit tests: seals events as the ledger does
// (sealEvent with the producer its envelope would have authenticated), cuts them into the
// full and control batches the ledger re-publishes, and answers range queries as
// `bulwark.audit.query` does (a GapSource), with hooks to make it fail or lie.
import { createCryptoProvider, toBase64 } from '@bulwark/crypto';
import { GENESIS_PREVIOUS_HASH, isControlEventType, newEvent, sealEvent, type EventType, type JsonObject, type LedgerEvent } from '@bulwark/events';
import type { ChainBatch } from './chain.js';
import type { GapRange, GapSource } from './core.js';

export const crypto = createCryptoProvider('node');

const PRODUCERS: Partial<Record<string, string>> = { policy: 'svc.policy', keys: 'svc.key-manager', tools: 'svc.schemapin', audit: 'svc.audit-ledger' };

type KeyPair = { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };

export class MemoryLedger {
  /** The key the chain starts under (a reader's pin). */
  readonly keys: KeyPair;
  /** The key it signs with now (`rotate` moves it). */
  signing: KeyPair;
  readonly events: LedgerEvent[] = [];
  /** Ranges asked for, in order. */
  readonly queries: GapRange[] = [];
  /** Makes the next `failures` queries throw. */
  failures = 0;
  /** Rewrites what the query serves (a lying or broken ledger). */
  serve: (events: LedgerEvent[]) => LedgerEvent[] = (events) => events;

  /** `keys`: the ledger's Ed25519 key pair (default a fresh one). */
  constructor(keys?: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }) {
    this.keys = keys ?? crypto.ed25519.generateKeyPair();
    this.signing = this.keys;
  }

  /**
   * The key manager's rotation of the ledger's key to `version` (`next`, default a fresh key),
   * signed by the key in force; later events are signed by the new one.
   */
  rotate(version: number, next: KeyPair = crypto.ed25519.generateKeyPair()): LedgerEvent {
    const x25519 = crypto.x25519.generateKeyPair().publicKey;
    const details = { principal: 'svc.audit-ledger', by: 'analyst.admin', version, ed25519: toBase64(next.publicKey), x25519: toBase64(x25519), at: 1, trigger: 'on_demand', natsUser: null };
    const event = this.append('keys.rotated', details, 'svc.key-manager', 'svc.audit-ledger');
    this.signing = next;
    return event;
  }

  append(eventType: EventType, details: JsonObject = {}, producer?: string, agentId = 'analyst.admin'): LedgerEvent {
    const previous = this.events.at(-1)?.eventHash ?? GENESIS_PREVIOUS_HASH;
    const by = producer ?? PRODUCERS[eventType.split('.')[0]!] ?? 'svc.policy';
    const sealed = sealEvent(crypto, this.signing.secretKey, newEvent({ agentId, eventType, details }), by, this.events.length, previous);
    this.events.push(sealed);
    return sealed;
  }

  /** Policy changes and, between them, decisions (what a control stream leaves out). */
  history(n: number): LedgerEvent[] {
    const out: LedgerEvent[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.append(i === 0 ? 'policy.registered' : 'policy.updated', { name: 'p', version: i + 1 }));
      this.append('policy.decision', { decision: 'Allow' });
    }
    return out;
  }

  /** The full batch of seqs [from, to]. */
  full(from: number, to: number): ChainBatch<LedgerEvent> {
    return { events: this.events.slice(from, to + 1) };
  }

  /** The control batch the ledger sends for the chunk [from, to]: its control events and control_previous_seq. */
  control(from: number, to: number): ChainBatch<LedgerEvent> {
    const events = this.events.slice(from, to + 1).filter((e) => isControlEventType(e.eventType));
    const before = this.events.slice(0, from).filter((e) => isControlEventType(e.eventType)).at(-1);
    return { events, controlPreviousSeq: before?.seq ?? -1 };
  }

  /** One control batch per control event (a chunk per event), in order. */
  controlMessages(): ChainBatch<LedgerEvent>[] {
    return this.events.filter((e) => isControlEventType(e.eventType)).map((e) => this.control(e.seq, e.seq));
  }

  source(pageSize = 2): GapSource {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const ledger = this;
    return {
      async *fetch(range) {
        ledger.queries.push(range);
        if (ledger.failures > 0) {
          ledger.failures--;
          throw new Error('ledger unavailable');
        }
        const matching = ledger.serve(
          ledger.events.filter((e) => e.seq >= range.fromSeq && (range.toSeq === undefined || e.seq <= range.toSeq) && (!range.control || isControlEventType(e.eventType)) && (range.eventTypes === undefined || range.eventTypes.includes(e.eventType))),
        );
        for (let i = 0; i < matching.length; i += pageSize) {
          await Promise.resolve();
          yield* matching.slice(i, i + pageSize);
        }
      },
    };
  }
}

/** A copy of `event` with some fields replaced (its hash and signature kept: a forgery). */
export function tampered(event: LedgerEvent, change: Partial<LedgerEvent>): LedgerEvent {
  return { ...event, ...change };
}
