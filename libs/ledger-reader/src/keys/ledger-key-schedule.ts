/**
 * Which key signs which part of the ledger (issue 12, "a service keeps running across its own
 * rotation", the ledger included). The ledger's own key changes are facts in its chain: the key
 * manager's `keys.rotated` for svc.audit-ledger, committed at seq N, is itself signed by the key
 * it retires, and every event from N + 1 on (and every checkpoint of a size above N) is signed by
 * the key it names. A verifier pinned to the ledger's first key (the one `bulwark init` made)
 * follows the changes as it verifies the events in order: no lookup outside the chain, so the
 * trust anchor stays the one pinned key, and a thief of a retired key cannot sign anything a
 * verifier accepts after the change.
 *
 * The rules a change must meet (else it is refused, never skipped): produced by svc.key-manager
 * (the producer table already says only it may), a well-formed fact, a version above the one in
 * force, and a key the ledger has never used before (no return to a retired key).
 */
import { LEDGER_PRINCIPAL } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { checkSealedEvent, type JsonObject, type LedgerEvent } from '@bulwark/events';
import { parseFact } from './facts.js';
import { KEY_FACT_PRODUCER } from './ledger-keys.js';

/** The part of an event the schedule reads. */
export interface LedgerKeyEvent {
  readonly seq: number;
  readonly producer: string;
  readonly eventType: string;
  readonly agentId: string;
  readonly details: JsonObject;
}

/** A committed change of the ledger's key: events after `seq` are signed by `ed25519PublicKey`. */
export interface LedgerKeyChange {
  readonly seq: number;
  readonly version: number;
  readonly ed25519PublicKey: Uint8Array;
  readonly x25519PublicKey: Uint8Array;
}

/** One stretch of the chain under one key: events `fromSeq` .. the next step's `fromSeq` − 1. */
export interface LedgerKeyStep {
  readonly fromSeq: number;
  /** The key manager's version number; 1 for the key the chain starts under (its version is not in the chain). */
  readonly version: number;
  readonly ed25519PublicKey: Uint8Array;
}

/** The event type of a ledger key change (with agent_id svc.audit-ledger). */
export const LEDGER_KEY_CHANGE_TYPE = 'keys.rotated';

const KEY_LENGTH = 32;

/**
 * The ledger key change an event makes, undefined for any other event, or the reason it is a
 * malformed one (a `keys.rotated` of svc.audit-ledger from the key manager that does not parse).
 * An event of another producer is not a change: the producer table refuses it on its own.
 */
export function ledgerKeyChangeOf(event: LedgerKeyEvent): LedgerKeyChange | string | undefined {
  if (event.eventType !== LEDGER_KEY_CHANGE_TYPE || event.agentId !== LEDGER_PRINCIPAL || event.producer !== KEY_FACT_PRODUCER) return undefined;
  const fact = parseFact(event.eventType, event.agentId, event.details);
  if (typeof fact === 'string') return `the ledger key change at seq ${event.seq} is malformed: ${fact}`;
  if (fact.type !== 'keys.rotated') return `the ledger key change at seq ${event.seq} is not a rotation`;
  const ed25519PublicKey = keyBytes(fact.keys.ed25519);
  const x25519PublicKey = keyBytes(fact.keys.x25519);
  if (ed25519PublicKey === undefined || x25519PublicKey === undefined) return `the ledger key change at seq ${event.seq} does not carry two 32-byte public keys`;
  return { seq: event.seq, version: fact.version, ed25519PublicKey, x25519PublicKey };
}

/** A fact's public key: the base64 of 32 bytes, as the key manager writes every key version (versions.ts `checkKeys`). */
function keyBytes(b64: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64)) return undefined;
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  return bytes.length === KEY_LENGTH ? bytes : undefined;
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * The ledger's keys along its chain, from the pinned first key, as a verifier learns them. Feed
 * it every verified event in seq order (`observe`); `keyFor(seq)` then answers for any seq up to
 * one past the last observed event (the events already seen, and the next one).
 */
export class LedgerKeySchedule {
  readonly #steps: LedgerKeyStep[];
  #observed = -1;

  /** `genesis`: the key in force at `fromSeq` (the ledger's first key for a verifier from seq 0). */
  constructor(genesis: Uint8Array, fromSeq = 0, version = 1) {
    if (genesis.length !== KEY_LENGTH) throw new RangeError(`ledger key schedule: the first key is ${genesis.length} bytes, not ${KEY_LENGTH}`);
    this.#steps = [{ fromSeq, version, ed25519PublicKey: Uint8Array.from(genesis) }];
    this.#observed = fromSeq - 1;
  }

  /** A copy that observes on its own (a ledger sealing a batch it may not commit). */
  clone(): LedgerKeySchedule {
    const copy = new LedgerKeySchedule(this.#steps[0]!.ed25519PublicKey, this.#steps[0]!.fromSeq, this.#steps[0]!.version);
    copy.#steps.push(...this.#steps.slice(1));
    copy.#observed = this.#observed;
    return copy;
  }

  /** The key that signs event `seq`, and the checkpoints of tree size `seq`. */
  keyFor(seq: number): Uint8Array {
    return this.stepFor(seq).ed25519PublicKey;
  }

  stepFor(seq: number): LedgerKeyStep {
    let step = this.#steps[0]!;
    for (const s of this.#steps) {
      if (s.fromSeq > seq) break;
      step = s;
    }
    return step;
  }

  /** The key in force after the last observed event. */
  get current(): LedgerKeyStep {
    return this.#steps[this.#steps.length - 1]!;
  }

  get steps(): readonly LedgerKeyStep[] {
    return this.#steps;
  }

  /**
   * Takes in a verified event (seq order; an event at or before the last one observed is
   * ignored, it was taken in already). Returns the reason the event is an unacceptable ledger key
   * change, or null: the caller refuses the chain from that event on.
   */
  observe(event: LedgerKeyEvent): string | null {
    if (event.seq <= this.#observed) return null;
    const change = ledgerKeyChangeOf(event);
    if (typeof change === 'string') return change;
    if (change !== undefined) {
      const current = this.current;
      if (change.version <= current.version) return `the ledger key change at seq ${event.seq} names version ${change.version}, not above version ${current.version} in force`;
      if (this.#steps.some((s) => sameKey(s.ed25519PublicKey, change.ed25519PublicKey))) return `the ledger key change at seq ${event.seq} returns to a key the ledger used before`;
      this.#steps.push({ fromSeq: event.seq + 1, version: change.version, ed25519PublicKey: change.ed25519PublicKey });
    }
    this.#observed = event.seq;
    return null;
  }
}

/**
 * The schedule that `changes` (ledger key changes alone, in seq order, as a query of `keys.rotated`
 * about svc.audit-ledger or the stored rows serve them) build from `genesis`: each must be sealed
 * under the key in force before it (its hash recomputed, its signature) and be a change the chain may
 * make. The reason one is refused otherwise. The links between them are not checked (they are not
 * consecutive): this answers "which key signs seq S", not "is the chain whole".
 */
export function scheduleOfChanges(crypto: Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>, genesis: Uint8Array, changes: Iterable<LedgerEvent>): LedgerKeySchedule | string {
  const schedule = new LedgerKeySchedule(genesis);
  for (const event of changes) {
    const sealed = checkSealedEvent(crypto, schedule.keyFor(event.seq), event);
    if (sealed !== null) return `the ledger key change at seq ${event.seq}: ${sealed}`;
    if (ledgerKeyChangeOf(event) === undefined) return `the event at seq ${event.seq} is not a ledger key change`;
    const problem = schedule.observe(event);
    if (problem !== null) return problem;
  }
  return schedule;
}
