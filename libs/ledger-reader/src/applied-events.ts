/**
 * Where a command that sent an event to the ledger waits for the verified reader to hand the
 * committed copy back with the projection's outcome (applied or refused). The wait is by event
 * id; an outcome that arrives before anyone waits (the reader can be faster than the caller's
 * next line) is kept among the last `capacity` ones, so a late wait still sees it.
 */
export interface AppliedWait<O> {
  /** The outcome, or undefined once `timeoutMs` passed without the event coming back. */
  readonly promise: Promise<O | undefined>;
  /** Stops waiting (idempotent); call it in a `finally`. */
  readonly cancel: () => void;
}

export class AppliedEvents<O> {
  readonly #waiting = new Map<string, (outcome: O) => void>();
  readonly #recent = new Map<string, O>();
  readonly #capacity: number;

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  /** The projection applied (or refused) the committed event `eventId`. */
  settle(eventId: string, outcome: O): void {
    const waiter = this.#waiting.get(eventId);
    if (waiter !== undefined) {
      this.#waiting.delete(eventId);
      waiter(outcome);
      return;
    }
    this.#recent.set(eventId, outcome);
    if (this.#recent.size > this.#capacity) this.#recent.delete(this.#recent.keys().next().value as string);
  }

  wait(eventId: string, timeoutMs: number): AppliedWait<O> {
    const early = this.#recent.get(eventId);
    if (early !== undefined) {
      this.#recent.delete(eventId);
      return { promise: Promise.resolve(early), cancel: () => undefined };
    }
    let timer: NodeJS.Timeout | undefined;
    const promise = new Promise<O | undefined>((resolve) => {
      timer = setTimeout(() => {
        this.#waiting.delete(eventId);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(eventId, (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
    return {
      promise,
      cancel: () => {
        clearTimeout(timer);
        this.#waiting.delete(eventId);
      },
    };
  }
}
