import type { Msg, MsgHdrs } from '@nats-io/nats-core';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { describe } from './connect.js';
import { BusRequestError, BusTimeoutError, BusUnavailableError } from './errors.js';
import { headersCarrier, Headers } from './headers.js';
import { RandomPool } from '@bulwark/crypto';
import { EnvelopeError, type SessionInitiatorOptions } from '@bulwark/envelope';
import { initiatorPort } from './internal/envelope-ports.js';
import { AdmissionKeys, encodeAdmissionTag } from './internal/handshake-admission.js';
import type { InitiatorSession, SessionInitiator } from './internal/frames.js';
import { InboxRequestFailed, ReplyInbox } from './internal/reply-inbox.js';
import { decodeReply, encodeRequest, REQUEST_ID_LENGTH } from './internal/rpc-wire.js';
import { hasActiveTrace, injectTrace } from './internal/trace.js';
import type { RejectionReporter } from './rejections.js';
import { kindHeaders, SWITCHING_CODE } from './rpc-server.js';
import { assertToken, directSubject, ServicePrincipals, type CommandSubject, type ServiceName } from './subjects.js';

export interface RequestOptions {
  /** How long to wait for the answer (default 2000 ms); a late answer is an error. */
  readonly timeoutMs?: number;
  /**
   * True when running the request twice has the effect of running it once (a read, an
   * evaluation, a request the service runs once per request id of its own). Only then does a
   * timeout, or a reply refused because the service's directory entry changed meanwhile, lead to
   * a retry on a fresh session: either leaves unknown whether the instance processed it.
   * A request that was never delivered (no responders), or that an instance switching its NATS
   * user refused unrun (E_BUS_SWITCHING), is sent again whatever this says, with a growing
   * pause, until timeoutMs is spent; a refusal as switching also gives the call at least
   * SWITCHING_GRACE_MS from the first one (the service said it is alive and back in a moment).
   */
  readonly idempotent?: boolean;
}

interface Affinity {
  readonly session: InitiatorSession;
  readonly instanceId: string;
  /** The instance's direct subject per command, built once per session rather than per request. */
  readonly targets: Map<CommandSubject, string>;
}

interface AffinityEntry {
  readonly promise: Promise<Affinity>;
  resolved?: Affinity;
}

export interface CommandClientOptions {
  /** This principal's identity for Noise IK; the responder's static key comes from its directory. */
  readonly sessions: Omit<SessionInitiatorOptions, 'peerId'>;
  /** The principal id of each service (default {@link ServicePrincipals}). */
  readonly principalFor?: (service: ServiceName) => string;
  /** Receives reply frames that fail an envelope check. */
  readonly rejections: RejectionReporter;
}

/**
 * Calls services' commands over encrypted sessions with instance affinity. The first call
 * to a service does a handshake through its queue group; the instance that answers holds
 * the session, and later calls go to its direct subject. When no instance answers (no
 * responders: nothing was delivered) the client handshakes again through the queue group and
 * tries again, pausing 25, 50, 100 ... 400 ms, until the call's timeoutMs is spent; a timeout is
 * retried once only for an idempotent call (see `idempotent`).
 * Every failure is a typed error: a caller at an enforcement point turns it into a deny.
 */
export class CommandClient {
  readonly #bus: Bus;
  readonly #initiatorFor: (service: ServiceName) => SessionInitiator;
  readonly #principalFor: (service: ServiceName) => string;
  readonly #admission: AdmissionKeys;
  readonly #rejections: RejectionReporter;
  readonly #affinity = new Map<ServiceName, AffinityEntry>();
  readonly #inbox: ReplyInbox;

  constructor(bus: Bus, options: CommandClientOptions) {
    this.#bus = bus;
    this.#inbox = new ReplyInbox(natsOf(bus).nc, natsOf(bus).gate);
    this.#rejections = options.rejections;
    const principalFor = options.principalFor ?? ((service: ServiceName) => ServicePrincipals[service]);
    this.#principalFor = principalFor;
    this.#initiatorFor = (service) => initiatorPort({ ...options.sessions, peerId: principalFor(service) });
    this.#admission = new AdmissionKeys(options.sessions);
  }

  /** The instance currently holding this client's session with `service`, if any. */
  async instanceOf(service: ServiceName): Promise<string | undefined> {
    const entry = this.#affinity.get(service);
    return entry === undefined ? undefined : (await entry.promise.catch(() => undefined))?.instanceId;
  }

  async request(subject: CommandSubject, body: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    const service = serviceOf(subject);
    const timeoutMs = options.timeoutMs ?? 2000;
    // No responders means nothing was delivered (the instance is gone, or the service is moving
    // its connection to a new NATS user and its subscriptions are away for a moment): retried
    // with a growing pause for as long as the call's timeoutMs allows.
    let deadline = performance.now() + timeoutMs;
    let attempts = 0;
    let pauseMs = NO_RESPONDERS_FIRST_PAUSE_MS;
    let retriedOnce = false;
    let graced = false;
    for (;;) {
      attempts++;
      const attemptMs = Math.max(1, Math.round(deadline - performance.now()));
      let affinity: Affinity | undefined;
      try {
        // An established, unexpired session is used without waiting on its promise.
        const cached = this.#affinity.get(service)?.resolved;
        affinity = cached !== undefined && !cached.session.expired ? cached : await this.#affinityFor(service, subject, attemptMs);
        return await this.#send(subject, affinity, body, attemptMs);
      } catch (e) {
        // The service's directory entry changed under the session (it rotated its key): nothing was sent.
        const rekeyed = e instanceof EnvelopeError && e.code === 'E_UNKNOWN_PEER';
        if (affinity !== undefined && (rekeyed || e instanceof BusUnavailableError || e instanceof BusTimeoutError)) this.#forget(service, affinity);
        // Refused unrun by an instance switching its NATS user: sent again, on the same session, after the same pauses.
        const switching = e instanceof BusRequestError && e.code === SWITCHING_CODE;
        // Its switch (the wait for its handlers, the reconnect) may outlast a short call timeout.
        if (switching && !graced) {
          graced = true;
          deadline = Math.max(deadline, performance.now() + SWITCHING_GRACE_MS);
        }
        if (e instanceof BusUnavailableError || switching) {
          const left = deadline - performance.now();
          if (left <= pauseMs) throw e instanceof BusUnavailableError ? noResponders(e, attempts, timeoutMs) : e;
          await new Promise((r) => setTimeout(r, pauseMs));
          pauseMs = Math.min(pauseMs * 2, NO_RESPONDERS_MAX_PAUSE_MS);
          continue;
        }
        // A timeout leaves unknown whether the instance ran the request: one retry, on a fresh
        // session with a full timeoutMs, only for an idempotent call; a rekey (nothing sent) one too.
        // So does a reply refused because the service's entry moved on while it ran (it rotated its key).
        const peerMoved = e instanceof BusRequestError && e.code === 'E_BUS_REPLY_REJECTED' && e.context['reason'] === 'E_UNKNOWN_SENDER';
        if (peerMoved && affinity !== undefined) this.#forget(service, affinity);
        const once = rekeyed || ((e instanceof BusTimeoutError || peerMoved) && options.idempotent === true);
        if (!once || retriedOnce) throw e;
        retriedOnce = true;
        deadline = performance.now() + timeoutMs;
      }
    }
  }

  /** Drops every session (e.g. after a key rotation); the next call handshakes again. */
  reset(): void {
    this.#affinity.clear();
  }

  #forget(service: ServiceName, stale: Affinity): void {
    // Only drop the session that failed: a concurrent call may already have replaced it.
    if (this.#affinity.get(service)?.resolved === stale) this.#affinity.delete(service);
  }

  #affinityFor(service: ServiceName, subject: CommandSubject, timeoutMs: number): Promise<Affinity> {
    const cached = this.#affinity.get(service);
    // An expired session (age or counter limit) is replaced before it is used.
    if (cached !== undefined && cached.resolved?.session.expired !== true) return cached.promise;
    const entry: AffinityEntry = { promise: this.#handshake(service, subject, timeoutMs) };
    this.#affinity.set(service, entry);
    entry.promise.then(
      (a) => {
        entry.resolved = a;
      },
      () => {
        // A failed handshake is not cached: the next call tries again.
        if (this.#affinity.get(service) === entry) this.#affinity.delete(service);
      },
    );
    return entry.promise;
  }

  async #handshake(service: ServiceName, subject: CommandSubject, timeoutMs: number): Promise<Affinity> {
    const initiator = this.#initiatorFor(service);
    const { message, finish } = await initiator.begin();
    const target = this.#bus.subject(subject);
    const reply = await this.#roundTrip(target, message, this.#admissionTag(service, message), timeoutMs, `handshake with ${service}`);
    const done = await finish(reply.data);
    if (done.kind === 'rejected') {
      this.#rejections.report({ reason: done.reason, sender: done.sender, subject });
      throw new BusRequestError('E_BUS_HANDSHAKE', `handshake with ${service} on ${target} failed: ${done.reason}`, { service, subject, reason: done.reason });
    }
    // The instance id becomes a subject token: refuse one that could redirect the requests.
    assertToken(done.instanceId, 'instance id');
    return { session: done.session, instanceId: done.instanceId, targets: new Map() };
  }

  async #send(subject: CommandSubject, affinity: Affinity, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const requestId = requestIds.take(REQUEST_ID_LENGTH);
    // The command is sealed into the request: the server refuses it on any other subject.
    const frame = affinity.session.seal(encodeRequest(requestId, subject, body));
    let target = affinity.targets.get(subject);
    if (target === undefined) {
      target = this.#bus.subject(directSubject(affinity.instanceId, subject));
      affinity.targets.set(subject, target);
    }
    let reply: Msg;
    try {
      // Awaited here rather than through #roundTrip: one promise hop less on every request.
      reply = await this.#inbox.request(target, frame, requestHeaders(), timeoutMs);
    } catch (cause) {
      throw this.#failure(cause, target, timeoutMs, `${subject} on instance ${affinity.instanceId}`);
    }
    const opened = affinity.session.open(reply.data);
    if (opened.kind !== 'accepted') {
      const reason = opened.kind === 'duplicate' ? 'E_REPLAY' : opened.reason;
      this.#rejections.report({ reason, sender: opened.sender, subject });
      throw new BusRequestError('E_BUS_REPLY_REJECTED', `reply to ${subject} from instance ${affinity.instanceId} failed its check: ${reason}`, { subject, reason });
    }
    const decoded = decodeReply(opened.plaintext, requestId, `${subject} on instance ${affinity.instanceId}`);
    if (!decoded.ok) {
      throw new BusRequestError(decoded.code, `${subject} failed remotely: ${decoded.message}`, { subject, remoteCode: decoded.code });
    }
    return decoded.body;
  }

  /**
   * The handshake's admission tag (internal/handshake-admission.ts): it lets the responder
   * charge this handshake to us, and refuse forged ones naming us, before any key work.
   */
  #admissionTag(service: ServiceName, init: Uint8Array): string | undefined {
    const entry = this.#admission.entry(this.#principalFor(service));
    const tag = entry === undefined ? undefined : this.#admission.tag(entry, init);
    return tag === undefined ? undefined : encodeAdmissionTag(tag);
  }

  async #roundTrip(target: string, data: Uint8Array, admissionTag: string | undefined, timeoutMs: number, what: string): Promise<Msg> {
    const carrier = headersCarrier(kindHeaders('handshake'));
    if (admissionTag !== undefined) carrier.set(Headers.admission, admissionTag);
    injectTrace(carrier);
    try {
      return await this.#inbox.request(target, data, carrier.headers(), timeoutMs);
    } catch (cause) {
      throw this.#failure(cause, target, timeoutMs, what);
    }
  }

  #failure(cause: unknown, target: string, timeoutMs: number, what: string): Error {
    if (cause instanceof InboxRequestFailed && cause.reason === 'no_responders') {
      return new BusUnavailableError('E_BUS_NO_RESPONDERS', `no responder for ${what} on ${target} (${this.#bus.url})`, { target }, { cause });
    }
    if (cause instanceof InboxRequestFailed && cause.reason === 'timeout') {
      return new BusTimeoutError('E_BUS_TIMEOUT', `no answer for ${what} on ${target} within ${timeoutMs} ms`, { target, timeoutMs }, { cause });
    }
    return new BusRequestError('E_BUS_REQUEST', `request for ${what} on ${target} failed: ${describe(cause)}`, { target }, { cause });
  }
}

/** The first pause before a call that met no responders is sent again; it doubles up to the max. */
export const NO_RESPONDERS_FIRST_PAUSE_MS = 25;
export const NO_RESPONDERS_MAX_PAUSE_MS = 400;
/** How long a call refused by a switching instance is sent again at the least, from the first refusal. */
export const SWITCHING_GRACE_MS = 5000;

/** The last attempt's error, saying how many attempts the call made within its timeoutMs. */
function noResponders(last: BusUnavailableError, attempts: number, timeoutMs: number): BusUnavailableError {
  return new BusUnavailableError('E_BUS_NO_RESPONDERS', `${last.message}: ${attempts} attempt${attempts === 1 ? '' : 's'} within ${timeoutMs} ms`, { ...last.context, attempts, timeoutMs }, { cause: last.cause });
}

/**
 * A session request goes to a subject that takes nothing else, so it needs no kind header;
 * it carries headers only when there is a trace to continue (saves encoding them here and
 * parsing them in the service, on every request).
 */
function requestHeaders(): MsgHdrs | undefined {
  if (!hasActiveTrace()) return undefined;
  const carrier = headersCarrier(kindHeaders('request'));
  injectTrace(carrier);
  return carrier.headers();
}

// Request ids only have to be unpredictable and unique per session; drawing them from a pool
// saves an OpenSSL call per request.
const requestIds = new RandomPool();

function serviceOf(subject: CommandSubject): ServiceName {
  // `bulwark.<service>.<command...>`
  const end = subject.indexOf('.', BULWARK_PREFIX.length);
  return (end < 0 ? subject.slice(BULWARK_PREFIX.length) : subject.slice(BULWARK_PREFIX.length, end)) as ServiceName;
}

const BULWARK_PREFIX = 'bulwark.';
