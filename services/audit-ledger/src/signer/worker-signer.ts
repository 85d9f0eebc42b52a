/**
 * Event signing on worker threads, so that the ledger's thread hashes the next batch
 * while this one is signed (Ed25519 is the largest single cost of an append).
 *
 * Fail secure: a worker that crashes, exits, answers with an error, times out, or returns
 * signatures of the wrong size or that do not verify fails every request it holds
 * (LedgerError E_SIGNER): the batch is then not stored and its messages not acknowledged.
 * The next request starts a new worker, so a failure costs one batch, never the service.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CryptoProvider } from '@bulwark/crypto';
import { HASH_LENGTH, SIGNATURE_LENGTH } from '@bulwark/events';
import { LedgerError } from '../errors.js';
import type { EventSigner } from './event-signer.js';
import type { SignReply, SignRequest, WorkerInit } from './protocol.js';

export interface WorkerSignerOptions {
  /** The ledger's provider: the workers create one of the same name, and it checks their replies. */
  readonly crypto: CryptoProvider;
  /** The ledger key (32-byte seed and public key); each worker gets a copy of the seed once, at start. */
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** Worker threads (default: one per core beyond the first, at least one). */
  readonly workers?: number;
  /** A request not answered in this long fails and its worker is replaced (default 30 s). */
  readonly timeoutMs?: number;
  /** The worker script (default ./worker.js); tests substitute one that misbehaves. */
  readonly script?: URL;
}

/** Below this many hashes per worker a batch is not split (the message round trip would dominate). */
const MIN_CHUNK = 64;

interface Pending {
  readonly count: number;
  readonly resolve: (signatures: Uint8Array) => void;
  readonly reject: (error: LedgerError) => void;
  readonly timer: NodeJS.Timeout;
}

interface Slot {
  worker: Worker | undefined;
  readonly pending: Map<number, Pending>;
}

function signerError(why: string, cause?: unknown): LedgerError {
  return new LedgerError('E_SIGNER', `event signer: ${why}; nothing was stored`, {}, cause === undefined ? undefined : { cause });
}

/**
 * A worker from TypeScript source (tests; the build runs worker.js) needs the tsx loader in
 * its own thread, and Node 20 does not apply `--import` to workers: a small bootstrap
 * registers it (resolved from the working directory, the repository root), then loads the script.
 */
function workerEntry(script: URL): { entry: URL | string; eval: boolean } {
  if (!script.pathname.endsWith('.ts')) return { entry: script, eval: false };
  return { entry: `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(script.href)}); })`, eval: true };
}

export class WorkerSigner implements EventSigner {
  readonly #crypto: CryptoProvider;
  readonly #secretKey: Uint8Array;
  readonly #publicKey: Uint8Array;
  readonly #timeoutMs: number;
  readonly #script: URL;
  readonly #slots: Slot[];
  #nextId = 0;
  #closed = false;
  #failures = 0;

  constructor(options: WorkerSignerOptions) {
    const workers = options.workers ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isSafeInteger(workers) || workers < 1) throw new LedgerError('E_SIGNER', `event signer: workers must be a positive integer, got ${workers}`);
    this.#crypto = options.crypto;
    this.#secretKey = options.secretKey.slice();
    this.#publicKey = options.publicKey.slice();
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    const ownScript = import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js';
    this.#script = options.script ?? new URL(ownScript, import.meta.url);
    this.#slots = Array.from({ length: workers }, () => ({ worker: undefined, pending: new Map() }));
  }

  /** Requests that failed (a worker crashed, exited, timed out, refused or answered wrongly). */
  get failures(): number {
    return this.#failures;
  }

  async sign(hashes: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.#sign(hashes);
    } catch (error) {
      this.#failures += 1;
      throw error;
    }
  }

  async #sign(hashes: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) throw signerError('closed');
    if (hashes.length % HASH_LENGTH !== 0) throw signerError(`${hashes.length} bytes of event hashes is not a multiple of ${HASH_LENGTH}`);
    const count = hashes.length / HASH_LENGTH;
    if (count === 0) return new Uint8Array(0);
    const parts = Math.min(this.#slots.length, Math.ceil(count / MIN_CHUNK));
    const per = Math.ceil(count / parts);
    const chunks: Promise<Uint8Array>[] = [];
    for (let i = 0; i < parts; i++) {
      const from = i * per;
      const to = Math.min(count, from + per);
      chunks.push(this.#request(this.#slots[i]!, hashes.subarray(from * HASH_LENGTH, to * HASH_LENGTH)));
    }
    const signed = await Promise.all(chunks);
    const out = signed.length === 1 ? signed[0]! : new Uint8Array(count * SIGNATURE_LENGTH);
    if (signed.length > 1) signed.forEach((part, i) => out.set(part, i * per * SIGNATURE_LENGTH));
    // One signature per chunk is checked: a worker with a wrong key or misordered replies fails here, not in verify later.
    for (let i = 0; i < parts; i++) {
      const at = i * per;
      if (!this.#crypto.ed25519.verify(this.#publicKey, hashes.subarray(at * HASH_LENGTH, (at + 1) * HASH_LENGTH), out.subarray(at * SIGNATURE_LENGTH, (at + 1) * SIGNATURE_LENGTH))) {
        throw signerError(`a signature from worker ${i} does not verify with the ledger key`);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        const worker = slot.worker;
        if (worker === undefined) return;
        this.#fail(slot, worker, signerError('closed'));
        await worker.terminate();
      }),
    );
  }

  #request(slot: Slot, hashes: Uint8Array): Promise<Uint8Array> {
    const worker = slot.worker ?? this.#start(slot);
    const id = this.#nextId++;
    const request: SignRequest = { id, hashes: hashes.slice().buffer as ArrayBuffer };
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(slot, worker, signerError(`worker did not answer within ${this.#timeoutMs} ms`));
        void worker.terminate();
      }, this.#timeoutMs);
      slot.pending.set(id, { count: hashes.length / HASH_LENGTH, resolve, reject, timer });
      worker.postMessage(request, [request.hashes]);
    });
  }

  #start(slot: Slot): Worker {
    const key = this.#secretKey.slice();
    const init: WorkerInit = { provider: this.#crypto.name, secretKey: key.buffer as ArrayBuffer };
    const { entry, eval: isEval } = workerEntry(this.#script);
    const worker = new Worker(entry, { eval: isEval, workerData: init, transferList: [init.secretKey] });
    // Pending requests hold timers, which keep the process alive while they wait; an idle worker must not.
    worker.unref();
    worker.on('message', (reply: SignReply) => this.#answer(slot, worker, reply));
    worker.on('error', (error) => this.#fail(slot, worker, signerError(`worker crashed (${error.message})`, error)));
    worker.on('exit', (code) => this.#fail(slot, worker, signerError(`worker exited (code ${code})`)));
    slot.worker = worker;
    return worker;
  }

  #answer(slot: Slot, worker: Worker, reply: SignReply): void {
    const pending = slot.pending.get(reply.id);
    if (pending === undefined || slot.worker !== worker) return;
    slot.pending.delete(reply.id);
    clearTimeout(pending.timer);
    if ('error' in reply) {
      pending.reject(signerError(`worker refused to sign (${reply.error})`));
      return;
    }
    const signatures = new Uint8Array(reply.signatures);
    if (signatures.length !== pending.count * SIGNATURE_LENGTH) {
      const error = signerError(`worker returned ${signatures.length} bytes of signatures for ${pending.count} hashes`);
      pending.reject(error);
      this.#fail(slot, worker, error);
      void worker.terminate();
      return;
    }
    pending.resolve(signatures);
  }

  /** Fails everything `worker` holds and forgets it; the next request starts a new one. Idempotent per worker. */
  #fail(slot: Slot, worker: Worker, error: LedgerError): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    for (const pending of slot.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    slot.pending.clear();
  }
}
