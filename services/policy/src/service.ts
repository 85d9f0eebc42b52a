import {
  Commands,
  createEventPublisher,
  createRejectionReporter,
  ensureStreams,
  Events,
  LEDGER_PRINCIPAL,
  serveCommands,
  type Bus,
  type CommandHandler,
  type CommandServer,
  type EventSubject,
} from '@bulwark/bus';
import { MAX_BATCH_REQUESTS, type PolicyChangeReply, type PolicyListReply } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender, type ChannelReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { encodeEvent, encodeEventBatch, newEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { DecisionCache, decisionToJson, type Decision, type PolicySet } from '@bulwark/policy-language';
import type { Logger } from '@bulwark/telemetry';
import { DecisionLog, type DecisionLogMetrics } from './decision-log.js';
import { PolicyAdminInputError, PolicyServiceError } from './errors.js';
import { followLedger, type LedgerFollower } from './ledger-follower.js';
import { createMasker } from './mask.js';
import { parseOne, PolicyProjection, type ApplyOutcome } from './projection.js';

export interface PolicyAuditOptions {
  /** Record every decision (`[security] audit_enabled`, default true). When on, a decision that cannot be recorded is a Deny. */
  readonly enabled?: boolean;
  /** Dotted request paths masked in decision events (`[policy] decision_log_mask`), e.g. `context.user.ssn`. */
  readonly maskedFields?: readonly string[];
  /** With a key, masked values become a keyed hash (HMAC-SHA256) instead of `"***"`. */
  readonly maskKey?: Uint8Array;
  readonly maxQueue?: number;
  readonly maxBatch?: number;
  readonly lingerMs?: number;
}

export interface PolicyServiceOptions {
  /** A connected bus; the service does not close it. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** The service's principal (`svc.policy`) and its X25519 key. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** The ledger's Ed25519 public key: replayed events must carry its signature. */
  readonly ledgerPublicKey: Uint8Array;
  /** Opens the ledger's re-published frames; default a SealedReceiver for `identity` accepting frames up to 10 years old (the stream is kept forever). */
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  /** Principals allowed to call `.admin.register|update|rollback` (everyone authenticated may list). */
  readonly admins: readonly string[];
  readonly audit?: PolicyAuditOptions;
  /** Decisions cached per policy set version (default 10 000). */
  readonly cacheSize?: number;
  /** How long an admin call waits for its committed event to come back from the ledger (default 5 000 ms). */
  readonly applyWaitMs?: number;
  /** How long boot may take to replay the ledger (default 30 000 ms). */
  readonly bootTimeoutMs?: number;
  /** Classification levels, lowest first. */
  readonly levels?: readonly string[];
  readonly logger?: Logger;
  /** Semver reported on `$SRV.INFO` (default 0.1.0). */
  readonly version?: string;
}

export interface PolicyServiceMetrics {
  readonly setVersion: string;
  readonly decisions: number;
  readonly cache: { readonly hits: number; readonly misses: number; readonly size: number };
  readonly audit: DecisionLogMetrics;
  readonly swaps: number;
  readonly skippedEvents: number;
}

export interface PolicyService {
  readonly instanceId: string;
  /** The policy set in force now. */
  current(): PolicySet;
  metrics(): PolicyServiceMetrics;
  stop(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * Starts one policy service instance (DESIGN §2, §5):
 * 1. replays the ledger batches on BULWARK_LEDGER from the start, keeping policy events, and compiles the set;
 * 2. only then answers `bulwark.policy.*` over encrypted sessions;
 * 3. keeps following the ledger: each committed policy event builds a new immutable set,
 *    swapped in by one assignment; a request reads the reference once, so it is decided by
 *    exactly one version, which its reply names (`setVersion` = `ledger-<seq>`).
 * Admin commands do not change state: they publish a policy event sealed to the ledger and
 * wait for it to come back committed.
 */
export async function startPolicyService(options: PolicyServiceOptions): Promise<PolicyService> {
  const { bus, provider, identity, directory, logger } = options;
  await ensureStreams(bus);
  const sender = new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL });
  const events = createEventPublisher(bus, sender);
  const rejections = createRejectionReporter(events, { reporter: identity.id });
  const audit = options.audit ?? {};
  const auditEnabled = audit.enabled ?? true;
  const decisionLog = new DecisionLog({
    mask: createMasker({ paths: audit.maskedFields ?? [], ...(audit.maskKey === undefined ? {} : { key: audit.maskKey }) }),
    publish: async (batchId, batch) => {
      await events.publish({ subject: Events.policy.decision, eventId: batchId, payload: encodeEventBatch(batch) });
    },
    ...(audit.maxQueue === undefined ? {} : { maxQueue: audit.maxQueue }),
    ...(audit.maxBatch === undefined ? {} : { maxBatch: audit.maxBatch }),
    ...(audit.lingerMs === undefined ? {} : { lingerMs: audit.lingerMs }),
    onError: (e) => logger?.error({ err: e }, 'policy decisions could not be recorded: denying new requests until the ledger accepts them'),
  });

  const projection = new PolicyProjection(options.levels);
  let current: PolicySet = projection.build();
  let live = false;
  let swaps = 0;
  let skipped = 0;
  let decisions = 0;
  const waiters = new Map<string, (outcome: ApplyOutcome) => void>();

  const onEvent = (event: LedgerEvent): void => {
    if (event.eventType === 'policy.decision' || event.eventType === 'policy.violation') return;
    const outcome = projection.apply(event);
    if (outcome.kind === 'skipped') {
      skipped++;
      logger?.warn({ eventId: event.eventId, seq: event.seq, why: outcome.why }, 'policy event skipped');
    } else if (live) {
      current = projection.build();
      swaps++;
      logger?.info({ policy: outcome.name, version: outcome.version, setVersion: current.version }, 'policy set swapped');
    }
    waiters.get(event.eventId)?.(outcome);
  };

  const follower: LedgerFollower = await followLedger({
    bus,
    provider,
    identity,
    directory,
    receiver: options.ledgerReceiver ?? new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    rejections,
    events,
    ...(options.levels === undefined ? {} : { levels: options.levels }),
    ...(logger === undefined ? {} : { logger }),
    onEvent,
    // Fail secure: a reader that halted (a ledger it cannot verify) leaves a set that denies everything.
    onHalt: (denyAll) => {
      current = denyAll;
    },
  });
  try {
    await follower.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await follower.stop();
    throw e;
  }
  current = follower.haltedSet ?? projection.build();
  live = true;
  logger?.info({ setVersion: current.version, policies: current.policies.length }, 'policy state rebuilt from the ledger');

  const cache = new DecisionCache({ max: options.cacheSize ?? 10_000 });
  const auditDeny = (set: PolicySet): Decision =>
    set.denyInvalid('audit log unavailable: the decision could not be recorded, so it is denied (audit_enabled)');

  /** Decides one request text with one set and queues its audit record; a decision that cannot be recorded is a Deny. */
  const decide = (set: PolicySet, peer: string, text: string): Decision => {
    decisions++;
    if (!auditEnabled) return cache.evaluateJson(set, text);
    // Refuse before evaluating: a full or failing log cannot take this decision anyway.
    if (!decisionLog.accepting) {
      decisionLog.offer(peer, text, auditDeny(set));
      return auditDeny(set);
    }
    const decision = cache.evaluateJson(set, text);
    return decisionLog.offer(peer, text, decision) ? decision : auditDeny(set);
  };

  // A cached decision is one frozen object answered again and again: its reply bytes are
  // encoded once (the bus copies them into the sealed frame; nobody writes to them).
  const replies = new WeakMap<Decision, Uint8Array>();
  const replyOf = (decision: Decision): Uint8Array => {
    let bytes = replies.get(decision);
    if (bytes === undefined) {
      bytes = encoder.encode(JSON.stringify(decisionToJson(decision)));
      if (Object.isFrozen(decision)) replies.set(decision, bytes);
    }
    return bytes;
  };

  const evaluate: CommandHandler = async (req) => replyOf(decide(current, req.peer, decoder.decode(req.body)));

  const evaluateBatch: CommandHandler = async (req) => {
    const set = current;
    let items: unknown;
    try {
      items = JSON.parse(decoder.decode(req.body));
    } catch {
      throw new PolicyAdminInputError('E_POLICY_BATCH', 'evaluate.batch: the body is not JSON');
    }
    if (!Array.isArray(items) || items.length > MAX_BATCH_REQUESTS) {
      throw new PolicyAdminInputError('E_POLICY_BATCH', `evaluate.batch: the body must be a JSON list of at most ${MAX_BATCH_REQUESTS} requests`);
    }
    // Each request's own text keys the cache and the audit record, as on the single path.
    const out = items.map((item) => decisionToJson(decide(set, req.peer, JSON.stringify(item))));
    return encoder.encode(JSON.stringify(out));
  };

  // One admin change at a time per instance, so two local calls never compute the same next version.
  let adminChain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = adminChain.then(fn, fn);
    adminChain = run.catch(() => undefined);
    return run;
  };

  const requireAdmin = (peer: string, command: string) => {
    if (!options.admins.includes(peer)) {
      throw new PolicyServiceError('E_POLICY_FORBIDDEN', `${command}: principal ${peer} is not a policy administrator`, { peer, command });
    }
  };

  const publishChange = async (eventType: EventType, subject: EventSubject, peer: string, details: Record<string, string | number>): Promise<PolicyChangeReply> => {
    const event = newEvent({ agentId: peer, eventType, details: { ...details, by: peer } });
    const applied = new Promise<ApplyOutcome | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), options.applyWaitMs ?? 5000);
      waiters.set(event.eventId, (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
    try {
      await events.publish({ subject, eventId: event.eventId, payload: encodeEvent(event) });
      const outcome = await applied;
      if (outcome?.kind === 'skipped') {
        throw new PolicyServiceError('E_POLICY_CONFLICT', `${eventType} of ${String(details['name'])} was committed but not applied: ${outcome.why}`, { eventId: event.eventId });
      }
      return { name: String(details['name']), version: Number(details['version']), eventId: event.eventId, applied: outcome !== undefined, setVersion: outcome === undefined ? null : current.version };
    } finally {
      waiters.delete(event.eventId);
    }
  };

  const readJson = (body: Uint8Array, command: string): Record<string, unknown> => {
    try {
      const v: unknown = JSON.parse(decoder.decode(body));
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // Reported below.
    }
    throw new PolicyAdminInputError('E_POLICY_ADMIN', `${command}: the body must be a JSON object`);
  };

  const change = (kind: 'register' | 'update'): CommandHandler => async (req) => {
    const command = `policy.admin.${kind}`;
    requireAdmin(req.peer, command);
    const body = readJson(req.body, command);
    const file = typeof body['file'] === 'string' && body['file'] !== '' ? body['file'] : 'policy';
    const ast = parseOne(body['text'], file, undefined, options.levels);
    if (typeof ast === 'string') throw new PolicyAdminInputError('E_POLICY_TEXT', `${command}: ${ast}`, { file });
    const reply = await serial(async () => {
      const known = projection.describe(ast.name);
      if (kind === 'register' && known !== undefined) throw new PolicyAdminInputError('E_POLICY_EXISTS', `${command}: policy ${ast.name} is already registered (version ${known.max}); use update`);
      if (kind === 'update' && known === undefined) throw new PolicyAdminInputError('E_POLICY_UNKNOWN', `${command}: policy ${ast.name} is not registered; use register`);
      const version = known === undefined ? 1 : known.max + 1;
      const [eventType, subject] = kind === 'register' ? (['policy.registered', Events.policy.registered] as const) : (['policy.updated', Events.policy.updated] as const);
      return publishChange(eventType, subject, req.peer, { name: ast.name, version, text: body['text'] as string, file });
    });
    return encoder.encode(JSON.stringify(reply));
  };

  const rollback: CommandHandler = async (req) => {
    const command = 'policy.admin.rollback';
    requireAdmin(req.peer, command);
    const body = readJson(req.body, command);
    const name = body['name'];
    const to = body['toVersion'];
    if (typeof name !== 'string' || typeof to !== 'number' || !Number.isSafeInteger(to) || to < 1) {
      throw new PolicyAdminInputError('E_POLICY_ADMIN', `${command}: needs {"name": string, "toVersion": positive integer}`);
    }
    const reply = await serial(async () => {
      const known = projection.describe(name);
      if (known === undefined) throw new PolicyAdminInputError('E_POLICY_UNKNOWN', `${command}: policy ${name} is not registered`);
      const text = projection.textOf(name, to);
      if (text === undefined) throw new PolicyAdminInputError('E_POLICY_VERSION', `${command}: policy ${name} has no version ${to} (versions ${known.versions.join(', ')})`);
      if (known.active === to) throw new PolicyAdminInputError('E_POLICY_VERSION', `${command}: policy ${name} version ${to} is already active`);
      return publishChange('policy.rolledback', Events.policy.rolledback, req.peer, { name, version: to, fromVersion: known.active, text: text.text, file: text.file });
    });
    return encoder.encode(JSON.stringify(reply));
  };

  const list: CommandHandler = async () => {
    const set = current;
    const reply: PolicyListReply = {
      setVersion: set.version,
      policies: set.policies.map((p) => ({ name: p.name, activeVersion: p.version, versions: projection.describe(p.name)?.versions ?? [p.version], file: p.file, rules: p.rules })),
    };
    return encoder.encode(JSON.stringify(reply));
  };

  let server: CommandServer;
  try {
    server = await serveCommands(bus, {
      service: 'policy',
      version: options.version ?? '0.1.0',
      rejections,
      sessions: { provider, self: identity, directory },
      handlers: {
        [Commands.policy.evaluate]: evaluate,
        [Commands.policy.evaluateBatch]: evaluateBatch,
        [Commands.policy.adminRegister]: change('register'),
        [Commands.policy.adminUpdate]: change('update'),
        [Commands.policy.adminRollback]: rollback,
        [Commands.policy.adminList]: list,
      },
    });
  } catch (e) {
    await follower.stop();
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    instanceId: server.instanceId,
    current: () => current,
    metrics: () => ({ setVersion: current.version, decisions, cache: cache.stats, audit: decisionLog.metrics(), swaps, skippedEvents: skipped }),
    stop() {
      stopping ??= (async () => {
        await server.stop();
        await follower.stop();
        await decisionLog.stop();
      })();
      return stopping;
    },
  };
}
