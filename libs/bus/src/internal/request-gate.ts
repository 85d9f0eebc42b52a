/**
 * Holds a connection's new requests while it moves to another NATS user (Bus.switchUser), and
 * lets the requests already sent get their answers first: a reply the server delivers while the
 * connection is away is lost (NATS keeps nothing for a disconnected client), so the switch waits
 * for the requests in flight (bounded by `maxWaitMs`), reconnects, and only then releases the
 * held ones, whose deadlines start when they are sent.
 */
export class RequestGate {
  #held: Promise<void> | undefined;
  #inflight = 0;
  #idle: (() => void) | undefined;

  /** Set while a switch holds new requests; a request waits on it before it is sent. */
  get held(): Promise<void> | undefined {
    return this.#held;
  }

  get inflight(): number {
    return this.#inflight;
  }

  enter(): void {
    this.#inflight++;
  }

  leave(): void {
    this.#inflight--;
    if (this.#inflight === 0) this.#idle?.();
  }

  /** Runs `during` with new requests held, once the requests in flight settled (or `maxWaitMs` passed). */
  async hold<T>(maxWaitMs: number, during: () => Promise<T>): Promise<T> {
    while (this.#held !== undefined) await this.#held;
    let release!: () => void;
    this.#held = new Promise<void>((r) => (release = r));
    try {
      if (this.#inflight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([new Promise<void>((r) => (this.#idle = r)), new Promise<void>((r) => (timer = setTimeout(r, maxWaitMs)))]);
        clearTimeout(timer);
        this.#idle = undefined;
      }
      return await during();
    } finally {
      this.#held = undefined;
      release();
    }
  }
}
