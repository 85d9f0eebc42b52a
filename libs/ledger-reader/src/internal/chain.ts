/**
 * Where a reader is in the ledger, and the order rules an event must meet to come next
 * (DESIGN §3a, §4; CONTRACTS §3). Pure: no bus, no keys. The seal and producer checks are
 * verify.ts's; this file only decides whether an event *follows* what was applied.
 *
 * - `full` (`bulwark.ledger.batch`): every event is there, so the next one is seq + 1 and its
 *   previous_hash is the event_hash of the last one applied (32 zero bytes before seq 0).
 * - `control` (`bulwark.ledger.control.<principal>`): only control-plane events are there,
 *   so the ledger tells each batch's predecessor: `control_previous_seq`, the seq of the last
 *   control event before the batch (-1 if none). The next event must name the last control
 *   event applied as its predecessor; inside a batch, each event's predecessor is the one
 *   before it. When two control events are adjacent seqs, their previous_hash link is checked too.
 */
import { GENESIS_PREVIOUS_HASH, HASH_LENGTH, isControlEventType } from '@bulwark/events';

export type ReaderMode = 'full' | 'control';

/** The last event a reader verified and applied: seq -1 and 32 zero bytes before any. */
export interface ReaderPosition {
  readonly seq: number;
  readonly eventHash: Uint8Array;
}

export const START_POSITION: ReaderPosition = Object.freeze({ seq: -1, eventHash: GENESIS_PREVIOUS_HASH });

/** The fields of a ledger event the order rules look at. */
export interface ChainEvent {
  readonly seq: number;
  readonly eventType: string;
  readonly previousHash: Uint8Array;
  readonly eventHash: Uint8Array;
}

/** A decoded BULWARK_LEDGER message: its events and, on a control subject, the ledger's `control_previous_seq`. */
export interface ChainBatch<E extends ChainEvent = ChainEvent> {
  readonly events: readonly E[];
  readonly controlPreviousSeq?: number | undefined;
}

/** The kinds of order problem; the reader maps them to halt codes. */
export type OrderProblem = { readonly kind: 'link' | 'fork' | 'message'; readonly seq: number; readonly why: string };

/** Hashes of recently applied events, to tell a late copy of one of them from a different event at the same seq. */
const KNOWN_HASHES = 4096;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * The batch as the ledger writes it, checked from the message alone, or the problem:
 * full batches hold consecutive seqs, each linked to the one before; control batches carry
 * `control_previous_seq` below their first seq, hold increasing seqs, and only control events.
 * Returns each event's predecessor seq (the ledger's word for what must come just before it).
 */
export function batchOrder(mode: ReaderMode, batch: ChainBatch): number[] | OrderProblem {
  const { events } = batch;
  const first = events[0];
  if (first === undefined) return { kind: 'message', seq: -1, why: 'an empty ledger batch' };
  const predecessors: number[] = [];
  if (mode === 'full') {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const before = events[i - 1];
      if (before !== undefined && (event.seq !== before.seq + 1 || !sameBytes(event.previousHash, before.eventHash))) {
        return { kind: 'link', seq: event.seq, why: `batch is not a chain: seq ${event.seq} does not follow seq ${before.seq} of the same batch` };
      }
      predecessors.push(event.seq - 1);
    }
    return predecessors;
  }
  const cps = batch.controlPreviousSeq;
  if (cps === undefined) return { kind: 'message', seq: first.seq, why: 'a control batch without control_previous_seq' };
  if (!Number.isSafeInteger(cps) || cps < -1 || cps >= first.seq) {
    return { kind: 'message', seq: first.seq, why: `control_previous_seq ${cps} is not below the batch's first seq ${first.seq}` };
  }
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (!isControlEventType(event.eventType)) return { kind: 'message', seq: event.seq, why: `${event.eventType} is not a control event, on a control subject` };
    const before = events[i - 1];
    if (before !== undefined && event.seq <= before.seq) return { kind: 'link', seq: event.seq, why: `batch is out of order: seq ${event.seq} after seq ${before.seq}` };
    if (before !== undefined && event.seq === before.seq + 1 && !sameBytes(event.previousHash, before.eventHash)) {
      return { kind: 'link', seq: event.seq, why: `previous_hash of seq ${event.seq} does not link to seq ${before.seq} of the same batch` };
    }
    predecessors.push(before === undefined ? cps : before.seq);
  }
  return predecessors;
}

/** The reader's place in the chain: what it verified and applied last, and the recent hashes. */
export class ChainCursor {
  readonly mode: ReaderMode;
  #seq: number;
  #hash: Uint8Array;
  readonly #known = new Map<number, Uint8Array>();

  constructor(mode: ReaderMode, start: ReaderPosition = START_POSITION) {
    if (!Number.isSafeInteger(start.seq) || start.seq < -1 || start.eventHash.length !== HASH_LENGTH) {
      throw new RangeError(`ledger reader: a start position needs seq >= -1 and a ${HASH_LENGTH}-byte event hash`);
    }
    this.mode = mode;
    this.#seq = start.seq;
    this.#hash = Uint8Array.from(start.eventHash);
    if (start.seq >= 0) this.#known.set(start.seq, this.#hash);
  }

  get position(): ReaderPosition {
    return { seq: this.#seq, eventHash: Uint8Array.from(this.#hash) };
  }

  get seq(): number {
    return this.#seq;
  }

  /**
   * Why `event`, whose predecessor the ledger says is `predecessor`, cannot be the next one
   * applied; null when it can. Call only for events after the position (`event.seq > seq`).
   */
  nextProblem(event: ChainEvent, predecessor: number): OrderProblem | null {
    if (predecessor !== this.#seq) {
      // A predecessor behind the position names an event the reader did apply as never having existed.
      const kind = predecessor < this.#seq ? 'fork' : 'link';
      return { kind, seq: event.seq, why: `seq ${event.seq} follows seq ${predecessor} on the ledger's word, but the last event applied is seq ${this.#seq}` };
    }
    if (event.seq === this.#seq + 1 && !sameBytes(event.previousHash, this.#hash)) {
      return { kind: 'link', seq: event.seq, why: `previous_hash of seq ${event.seq} does not link to seq ${this.#seq}` };
    }
    return null;
  }

  /** Records `event` as applied (after nextProblem said null and its seal was checked). */
  advance(event: ChainEvent): void {
    this.#seq = event.seq;
    this.#hash = event.eventHash;
    this.#known.set(event.seq, event.eventHash);
    if (this.#known.size > KNOWN_HASHES) this.#known.delete(this.#known.keys().next().value!);
  }

  /** Whether `seq` (at or before the position) is among the recently applied events the cursor remembers. */
  remembers(seq: number): boolean {
    const oldest = this.#known.keys().next().value;
    return oldest !== undefined && seq >= oldest && seq <= this.#seq;
  }

  /**
   * For an event at or before the position (a late or repeated message): null when it is the
   * event applied at that seq, or too old to compare; a fork when another event was applied there.
   */
  replayProblem(event: ChainEvent): OrderProblem | null {
    const known = this.#known.get(event.seq);
    if (known === undefined) {
      // Every event from the oldest remembered one to the position was applied and remembered:
      // one in that range that is not among them is an event the ledger's order left out.
      const oldest = this.#known.keys().next().value;
      if (oldest === undefined || event.seq < oldest) return null;
      return { kind: 'fork', seq: event.seq, why: `seq ${event.seq} arrived late, but the ledger's order went from an earlier event past it` };
    }
    if (sameBytes(known, event.eventHash)) return null;
    return { kind: 'fork', seq: event.seq, why: `seq ${event.seq} arrived again as a different event than the one applied` };
  }
}
