/**
 * Request/reply over one wildcard inbox subscription, like nats.js's own request mux, but
 * without its per-request cost: nats.js builds a RequestError ("cancelled") for every
 * request it completes, whether or not anyone sees it, and capturing its stack is the
 * largest single cost of a round trip. Replies are matched by a token in the reply
 * subject; the envelope and the request id check what a reply says.
 *
 * Deadlines are kept per request and checked by one timer that sweeps every
 * {@link SWEEP_MS} while requests wait, instead of a timer per request (arming and clearing
 * one cost ~2.4 µs of a ~60 µs round trip): a request fails at most SWEEP_MS after its
 * timeout, and a reply that arrives after the deadline is refused as a timeout all the same.
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import type { RequestGate } from './request-gate.js';

export type InboxFailure = 'no_responders' | 'timeout' | 'closed';

/** Why a request through the inbox got no reply. */
export class InboxRequestFailed extends Error {
  readonly reason: InboxFailure;
  constructor(reason: InboxFailure, message: string) {
    super(message);
    this.name = 'InboxRequestFailed';
    this.reason = reason;
  }
}

interface Pending {
  resolve(msg: Msg): void;
  reject(error: InboxRequestFailed): void;
  readonly deadline: number;
  readonly timeoutMs: number;
}

/** How often waiting requests are checked against their deadlines. */
export const SWEEP_MS = 10;

export class ReplyInbox {
  readonly #nc: NatsConnection;
  #prefix: string | undefined;
  #sub: Subscription | undefined;
  #next = 0;
  readonly #pending = new Map<string, Pending>();
  #sweeper: NodeJS.Timeout | undefined;

  readonly #gate: RequestGate | undefined;

  /** `gate`: the connection's (Bus.switchUser holds new requests there and waits for these). */
  constructor(nc: NatsConnection, gate?: RequestGate) {
    this.#nc = nc;
    this.#gate = gate;
  }

  request(subject: string, data: Uint8Array, headers: MsgHdrs | undefined, timeoutMs: number): Promise<Msg> {
    const gate = this.#gate;
    // Held while the connection moves to another user: sent once it is back, its deadline from then.
    const held = gate?.held;
    if (held !== undefined) return held.then(() => this.request(subject, data, headers, timeoutMs));
    const prefix = this.#subscribed();
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      if (gate !== undefined) {
        gate.enter();
        const [ok, fail] = [resolve, reject];
        resolve = (m) => {
          gate.leave();
          ok(m);
        };
        reject = (e) => {
          gate.leave();
          fail(e);
        };
      }
      this.#pending.set(token, { resolve, reject, deadline: performance.now() + timeoutMs, timeoutMs });
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS);
      try {
        this.#nc.publish(subject, data, headers === undefined ? { reply: prefix + token } : { reply: prefix + token, headers });
      } catch (e) {
        this.#pending.delete(token);
        reject(new InboxRequestFailed('closed', `cannot publish: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
  }

  /** Fails the requests past their deadline; stops once none waits. */
  #sweep(): void {
    const now = performance.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#pending.delete(token);
        pending.reject(timedOut(pending));
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #subscribed(): string {
    if (this.#sub !== undefined && this.#prefix !== undefined && !this.#sub.isClosed()) return this.#prefix;
    // The connection's inbox prefix (`_INBOX.<principal token>` under NATS authentication:
    // the only inbox its user may subscribe to).
    const prefix = `${createInbox((this.#nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix)}.`;
    const sub = this.#nc.subscribe(`${prefix}*`, { callback: (err, msg) => this.#deliver(prefix, err, msg) });
    this.#sub = sub;
    this.#prefix = prefix;
    // A subscription that ends (connection closed) fails what is still waiting on it.
    void sub.closed.then(
      () => this.#failAll(sub),
      () => this.#failAll(sub),
    );
    return prefix;
  }

  #deliver(prefix: string, err: Error | null, msg: Msg): void {
    if (err !== null || msg === undefined || !msg.subject.startsWith(prefix)) return;
    const token = msg.subject.slice(prefix.length);
    const pending = this.#pending.get(token);
    if (pending === undefined) return;
    this.#pending.delete(token);
    if (performance.now() > pending.deadline) {
      pending.reject(timedOut(pending));
      return;
    }
    // The server answers a request nobody listens to with an empty 503 status message.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      pending.reject(new InboxRequestFailed('no_responders', 'no responders'));
      return;
    }
    pending.resolve(msg);
  }

  #failAll(sub: Subscription): void {
    if (this.#sub !== sub) return;
    this.#sub = undefined;
    for (const [token, pending] of this.#pending) {
      this.#pending.delete(token);
      pending.reject(new InboxRequestFailed('closed', 'the reply subscription ended (connection closed)'));
    }
  }
}

function timedOut(pending: Pending): InboxRequestFailed {
  return new InboxRequestFailed('timeout', `no reply within ${pending.timeoutMs} ms`);
}
