import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { isBulwarkError } from '@bulwark/errors';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { BusUsageError } from './errors.js';
import { headersCarrier, Headers } from './headers.js';
import { DEFAULT_MAX_FRAME_SIZE, SessionResponder, type SessionResponderOptions } from '@bulwark/envelope';
import { HandshakeLimiter, type HandshakeLimits } from './handshake-limiter.js';
import { responderPort } from './internal/envelope-ports.js';
import type { OpenedRequest, SessionResponderPort } from './internal/frames.js';
import { HandshakeGate } from './internal/handshake-gate.js';
import { maxReplyPlaintext } from './internal/reply-padding.js';
import { decodeRequest, encodeReply, type ReplyBody } from './internal/rpc-wire.js';
import { commandObserver } from './internal/observe.js';
import { runInExtractedTrace } from './internal/trace.js';
import { outOfNamespace } from './namespace.js';
import { checkReadiness, type Readiness } from './readiness.js';
import type { RejectionReporter } from './rejections.js';
import { Commands, DIRECT_SUBJECT_ROOT, type CommandSubject, type ServiceName } from './subjects.js';

/** One decrypted request, as a command handler sees it. */
export interface CommandRequest {
  readonly subject: CommandSubject;
  readonly body: Uint8Array;
  /** The authenticated initiator (from the Noise IK handshake). */
  readonly peer: string;
  readonly sessionId: string;
}

/** Returns the reply body; a throw becomes an error reply (`code` of a BulwarkError, else E_INTERNAL). */
export type CommandHandler = (request: CommandRequest) => Promise<Uint8Array>;

export interface ServeCommandsOptions {
  readonly service: ServiceName;
  readonly version: string;
  readonly description?: string;
  readonly handlers: { readonly [S in CommandSubject]?: CommandHandler };
  /** The service's identity for Noise IK sessions; the bus adds this instance's id. */
  readonly sessions: Omit<SessionResponderOptions, 'instanceId'>;
  readonly rejections: RejectionReporter;
  /** How often expired sessions are dropped (default 60 s). */
  readonly pruneIntervalMs?: number;
  /** Handshake budgets: per authenticated principal, in all, and the shared failure budget (see HandshakeLimits). */
  readonly handshakeLimits?: HandshakeLimits;
  /** The service's own readiness check, on top of the bus's: why it is not ready (one line), or undefined. */
  readonly notReady?: () => string | undefined;
}

export interface CommandServer {
  /** This instance's id: the micro-service id, and the token of its direct subject. */
  readonly instanceId: string;
  /** The micro-service name answered on `$SRV.PING|INFO|STATS.<name>`: `bulwark-<service>`. */
  readonly serviceName: string;
  readiness(): Promise<Readiness>;
  /** Resolves once no request is being handled (at once when none is). */
  idle(): Promise<void>;
  /**
   * What `Bus.switchUser` does first: from now until `resume`, a request is refused at once with
   * `E_BUS_SWITCHING` (not run; the client sends it again after a pause) rather than run into the
   * reconnect, where its reply would be refused; `idle` resolves once the requests it was already
   * handling, and the handshakes it is answering, are done.
   */
  quiesce(): Quiesced;
  stop(): Promise<void>;
}

/** A command server refusing new requests for a switch of NATS user (CommandServer.quiesce). */
export interface Quiesced {
  idle(): Promise<void>;
  resume(): void;
}

/** The error code of a request refused because its server is switching NATS user: it did not run, send it again. */
export const SWITCHING_CODE = 'E_BUS_SWITCHING';

/**
 * Registers the service with the NATS micro-services framework and answers its commands:
 *
 * - Handshakes arrive on each command subject, in the queue group `bulwark-<service>`, so
 *   any one instance answers; its reply carries its instance id inside the encrypted
 *   handshake payload.
 * - Requests of an established session arrive on `bulwark.direct.<instance id>.<command>`,
 *   which only this instance listens on (it alone holds the session's keys).
 *
 * A frame that fails an envelope check (or a replayed request) is dropped without an
 * answer, counted and reported; the handler never sees it, and the caller's request times
 * out (which it turns into a deny).
 */
export async function serveCommands(bus: Bus, options: ServeCommandsOptions): Promise<CommandServer> {
  const own = Object.values(Commands[options.service]) as CommandSubject[];
  for (const subject of Object.keys(options.handlers)) {
    if (!own.includes(subject as CommandSubject)) {
      throw new BusUsageError('E_BUS_HANDLER', `handler for ${subject} does not belong to service ${options.service}`, { subject, service: options.service });
    }
  }
  if (!SEMVER.test(options.version)) {
    throw new BusUsageError('E_BUS_VERSION', `service ${options.service} version "${options.version}" is not semver (x.y.z), as $SRV.INFO requires`, { version: options.version });
  }
  const serviceName = `bulwark-${options.service}`;
  // $SRV.STATS can be asked by anyone on the bus: reuse a recent readiness answer rather
  // than letting each request (times each endpoint) cost JetStream API calls.
  let cached: { at: number; value: Promise<Readiness> } | undefined;
  const readiness = (): Promise<Readiness> => {
    if (cached === undefined || Date.now() - cached.at > 1000) cached = { at: Date.now(), value: checkReadiness(bus).then((r) => withOwnCheck(r, options.notReady?.())) };
    return cached.value;
  };
  // Queue names may not hold dots; subjects already separate namespaces.
  const queue = serviceName;
  // @nats-io/services 3.0.0-25 is typed against nats-core 3.0.0-50; at run time it uses
  // only the connection's public subscribe/publish API, which 3.4 keeps.
  const svcm = new Svcm(natsOf(bus).nc as unknown as ConstructorParameters<typeof Svcm>[0]);
  let stopped = false;
  // Requests being handled: a reply may only go out on the connection the request came in on
  // (the server's `allow_responses`), so a switch of NATS user waits for them (Bus.switchUser).
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  // Switches under way (Bus.switchUser): while above 0, requests are refused with SWITCHING_CODE.
  let switching = 0;
  const counted =
    (fn: (m: Msg) => Promise<void>) =>
    async (msg: Msg): Promise<void> => {
      inFlight++;
      try {
        await fn(msg);
      } finally {
        if (--inFlight === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const w of waiters) w();
        }
      }
    };
  const service: Service = await svcm.add({
    name: serviceName,
    version: options.version,
    description: options.description ?? `Bulwark ${options.service} service`,
    queue,
    metadata: { namespace: bus.namespace.subjectPrefix },
    statsHandler: () => readiness(),
  });
  const instanceId = service.info().id;
  // The instance id is known only once the micro-service exists, so the responder is built here.
  const responder: SessionResponderPort = responderPort(new SessionResponder({ ...options.sessions, instanceId }));
  const pruner = setInterval(() => responder.prune(), options.pruneIntervalMs ?? 60_000);
  pruner.unref();
  const directPrefix = bus.subject(`${DIRECT_SUBJECT_ROOT}.${instanceId}.`);

  const observer = commandObserver(options.service);
  const reject = (reason: string, sender: string | undefined, msg: Msg) =>
    options.rejections.report({ reason, sender, subject: outOfNamespace(bus.namespace, msg.subject) });

  // Admission before the two X25519 operations a handshake costs (internal/handshake-gate.ts):
  // a principal is charged only once its admission tag authenticated it; failures share one budget.
  const gate = new HandshakeGate(options.sessions, new HandshakeLimiter(options.handshakeLimits));
  const onHandshake = async (msg: Msg): Promise<void> => {
    if (readKind(msg) !== 'handshake') return reject('E_BUS_KIND', undefined, msg);
    const admitted = gate.admit(msg.data, headersCarrier(msg.headers).get(Headers.admission));
    if (!admitted.ok) return reject(admitted.reason, admitted.sender, msg);
    const result = await responder.accept(msg.data).catch(() => ({ kind: 'rejected' as const, reason: 'E_HANDSHAKE', sender: undefined }));
    if (result.kind === 'rejected') {
      gate.failed();
      return reject(result.reason, result.sender, msg);
    }
    msg.respond(result.reply);
  };
  const selfId = options.sessions.self.id;
  const maxFrameSize = options.sessions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;

  const onRequest = async (msg: Msg): Promise<void> => {
    // The direct subject takes only session requests: the client leaves the kind header
    // out, but a frame that says it is something else is refused. (The envelope refuses a
    // handshake frame here anyway: it is not a data frame of an established session.)
    const kind = msg.headers === undefined ? 'request' : readKind(msg);
    if (kind !== 'request') return reject('E_BUS_KIND', undefined, msg);
    const command = `bulwark.${msg.subject.slice(directPrefix.length)}` as CommandSubject;
    let opened: OpenedRequest;
    try {
      opened = responder.open(msg.data);
    } catch {
      opened = { kind: 'rejected', reason: 'E_OPEN_FAILED', sender: undefined };
    }
    switch (opened.kind) {
      case 'rejected':
        return reject(opened.reason, opened.sender, msg);
      case 'duplicate':
        // Requests are never redelivered by the bus: a repeated counter is a replay.
        return reject('E_REPLAY', opened.sender, msg);
      case 'accepted':
        break;
      default: {
        const never: never = opened;
        throw new Error(`unhandled open outcome ${String(never)}`);
      }
    }
    // The command the request was sealed for must be the one whose subject it arrived on.
    const request = decodeRequest(opened.plaintext, command);
    if (!request.ok) return reject(request.reason, opened.sender, msg);
    const maxReply = maxReplyPlaintext(selfId, opened.sender, maxFrameSize);
    if (switching > 0) {
      // Answered now, on the connection it came in on (synchronously: before the switch's last
      // flush), instead of run into the reconnect, after which its reply would be a Publish Violation.
      msg.respond(opened.sealReply(encodeReply(request.requestId, { ok: false, code: SWITCHING_CODE, message: `${options.service} is switching its NATS user: not run, send it again` }, maxReply)));
      return;
    }
    const handler = options.handlers[command];
    let reply: ReplyBody;
    if (handler === undefined) {
      reply = { ok: false, code: 'E_BUS_NO_HANDLER', message: `${options.service} has no handler for ${command}` };
    } else {
      try {
        const body = await runInExtractedTrace(msg.headers === undefined ? undefined : headersCarrier(msg.headers), () =>
          observer.handle(command, () => handler({ subject: command, body: request.body, peer: opened.sender, sessionId: opened.sessionId })),
        );
        reply = { ok: true, body };
      } catch (e) {
        reply = isBulwarkError(e) ? { ok: false, code: e.code, message: e.message } : { ok: false, code: 'E_INTERNAL', message: `${command} failed in ${options.service}` };
      }
    }
    if (stopped) return;
    // Padded to its size bucket: the reply's length does not tell what it says.
    msg.respond(opened.sealReply(encodeReply(request.requestId, reply, maxReply)));
  };

  // Errors from the handlers above are already turned into replies or drops; anything
  // left (a closed connection) has nobody to answer.
  const guard = (fn: (m: Msg) => Promise<void>) => (err: Error | null, msg: ServiceMsg) => {
    if (err === null) void counted(fn)(msg as unknown as Msg).catch(() => undefined);
  };
  for (const subject of own) {
    if (options.handlers[subject] === undefined) continue;
    service.addEndpoint(subject.slice('bulwark.'.length).replaceAll('.', '_'), { subject: bus.subject(subject), handler: guard(onHandshake) });
  }
  service.addEndpoint('direct', { subject: `${directPrefix}>`, queue: instanceId, handler: guard(onRequest) });
  await (natsOf(bus).nc as NatsConnection).flush();

  let stopping: Promise<void> | undefined;
  const idle = () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)));
  const server: CommandServer = {
    instanceId,
    serviceName,
    readiness: () => checkReadiness(bus).then((r) => withOwnCheck(r, options.notReady?.())),
    idle,
    quiesce() {
      switching++;
      let resumed = false;
      return {
        idle,
        resume: () => {
          if (!resumed) switching--;
          resumed = true;
        },
      };
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearInterval(pruner);
        untrack();
        await service.stop().catch(() => undefined);
      })();
      return stopping;
    },
  };
  const untrack = bus.track(server);
  return server;
}

const SEMVER = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

function readKind(msg: Msg): string | undefined {
  return headersCarrier(msg.headers).get(Headers.kind);
}

export function kindHeaders(kind: 'handshake' | 'request') {
  const h = natsHeaders();
  h.set(Headers.kind, kind);
  return h;
}

function withOwnCheck(bus: Readiness, own: string | undefined): Readiness {
  if (own === undefined) return bus;
  return { ...bus, ready: false, reason: bus.reason === '' ? own : `${bus.reason}; ${own}` };
}
