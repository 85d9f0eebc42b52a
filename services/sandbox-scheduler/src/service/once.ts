import { LRUCache } from 'lru-cache';
import { SandboxInputError } from '../errors.js';

/** What a caller's request id may look like: 16 to 128 URL-safe characters (the SDK draws 22 from 16 random bytes). */
export const REQUEST_ID = /^[A-Za-z0-9_-]{16,128}$/;

export interface RunOnceOptions {
  /** SHA-256 of a request body: a request id reused for another body is refused, not answered with the first outcome. */
  readonly digest: (body: Uint8Array) => Uint8Array;
  /** Finished outcomes remembered (default 4096). */
  readonly maxEntries?: number;
  /** Their reply bytes in all (default 64 MiB): a schedule's reply carries its output. */
  readonly maxBytes?: number;
  /** How long a finished outcome is remembered (default 10 min: longer than a caller's timeout and its one retry). */
  readonly ttlMs?: number;
}

type Outcome = { readonly ok: true; readonly reply: Uint8Array } | { readonly ok: false; readonly error: unknown };

interface Entry {
  readonly digest: string;
  readonly outcome: Promise<Outcome>;
}

/**
 * Runs a request at most once per (caller, request id): a retry of a request whose reply was
 * lost (a timeout, a reply refused at a switch of NATS user) gets the first run's outcome, or
 * waits for it while it still runs, instead of running the workload again. The id is the
 * caller's, scoped to the authenticated caller, so one principal can neither see nor block
 * another's outcome. A request in progress is always remembered; a finished one for `ttlMs`
 * within `maxEntries`/`maxBytes` (the oldest forgotten first), in this process only.
 */
export class RunOnce {
  readonly #digest: (body: Uint8Array) => Uint8Array;
  readonly #running = new Map<string, Entry>();
  readonly #done: LRUCache<string, { readonly digest: string; readonly outcome: Outcome }>;

  constructor(options: RunOnceOptions) {
    this.#digest = options.digest;
    this.#done = new LRUCache({
      max: options.maxEntries ?? 4096,
      maxSize: options.maxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (v) => Math.max(1, v.outcome.ok ? v.outcome.reply.length : 256),
      ttl: options.ttlMs ?? 10 * 60_000,
    });
  }

  /** Outcomes remembered (running and finished). */
  get size(): number {
    return this.#running.size + this.#done.size;
  }

  /** `work`'s reply, or the reply (or error) of the first request from `peer` with `requestId`. */
  async run(peer: string, requestId: string, body: Uint8Array, work: () => Promise<Uint8Array>): Promise<Uint8Array> {
    if (!REQUEST_ID.test(requestId)) throw new SandboxInputError('E_SANDBOX_REQUEST', 'sandbox.schedule: requestId must be 16-128 of A-Z a-z 0-9 _ -', {});
    const key = `${peer}\n${requestId}`;
    const digest = Buffer.from(this.#digest(body)).toString('base64');
    const reused = (held: string) => {
      if (held !== digest) throw new SandboxInputError('E_SANDBOX_REQUEST_REUSED', `sandbox.schedule: request id ${requestId} was used for another request`, { requestId });
    };
    const running = this.#running.get(key);
    if (running !== undefined) {
      reused(running.digest);
      return settled(await running.outcome);
    }
    const done = this.#done.get(key);
    if (done !== undefined) {
      reused(done.digest);
      return settled(done.outcome);
    }
    const outcome: Promise<Outcome> = work().then(
      (reply) => ({ ok: true, reply }),
      (error: unknown) => ({ ok: false, error }),
    );
    this.#running.set(key, { digest, outcome });
    const result = await outcome;
    this.#running.delete(key);
    this.#done.set(key, { digest, outcome: result });
    return settled(result);
  }
}

function settled(outcome: Outcome): Uint8Array {
  if (outcome.ok) return outcome.reply;
  throw outcome.error;
}
