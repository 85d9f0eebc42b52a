import type { CommandHandler, CommandRequest } from '@bulwark/bus';
import { permits, resourceAccessRequest, type PolicyDecision, type PolicyRequest } from '@bulwark/client';
import { BulwarkError, InputError } from '@bulwark/errors';
import type { JsonObject } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import type { SandboxRun } from '../drivers/types.js';
import { describeSign } from '../monitor/signs.js';
import { SandboxInputError } from '../errors.js';
import { parseAllowEntry, validateRule, type EgressAllowlist, type EgressRule } from '../egress/allowlist.js';
import { parseAssessment } from '../risk/assessment.js';
import { parseTierRequest } from '../risk/tier.js';
import type { Scheduler } from './scheduler.js';
import type { SandboxEvents } from './events.js';
import type { RunOnce } from './once.js';

/** Asks the policy service; the client turns a missing or late answer into a Deny (fail secure). */
export type AskPolicy = (request: PolicyRequest) => Promise<PolicyDecision>;

export interface HandlerDeps {
  readonly scheduler: Scheduler;
  readonly events: SandboxEvents;
  readonly askPolicy: AskPolicy;
  /** Principals besides a sandbox's own agent that may terminate it (incident response, administrators). */
  readonly terminators: readonly string[];
  /**
   * Schedules by their caller's `requestId`: a retry (same caller, id and body) gets the first
   * run's outcome instead of a second run. Without it every schedule runs.
   */
  readonly once?: RunOnce;
  readonly logger?: Logger;
}

/** A schedule the policy service refused: E_SANDBOX_DENIED, with its reason. */
export class SandboxDeniedError extends BulwarkError {}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_ARGS = 256;
const MAX_ARG_BYTES = 64 * 1024;

function readBody(body: Uint8Array, command: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(decoder.decode(body));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new SandboxInputError('E_SANDBOX_REQUEST', `${command}: the body must be a JSON object`, {});
}

function readArgs(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_ARGS || !value.every((a) => typeof a === 'string' && a.length <= MAX_ARG_BYTES && !a.includes('\0'))) {
    throw new SandboxInputError('E_SANDBOX_REQUEST', `sandbox.schedule: args must be a non-empty list of at most ${MAX_ARGS} strings without NUL`, {});
  }
  return value as string[];
}

/** `egress`: a list of `"host:port"` strings or rule objects ({ domain | ipRange, ports, protocol }). */
function readEgress(value: unknown): EgressAllowlist | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > 64) throw new SandboxInputError('E_SANDBOX_EGRESS', 'sandbox.schedule: egress must be a list of at most 64 rules', {});
  return { rules: value.map((r: unknown) => (typeof r === 'string' ? parseAllowEntry(r) : validateRule(r as EgressRule))) };
}

function withoutUndefined(o: Record<string, string | number | undefined>): JsonObject {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as JsonObject;
}

const reply = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

/** What a run record says on the wire and in the ledger (output stays off the ledger). */
export function runSummary(run: SandboxRun): JsonObject {
  return {
    sandboxId: run.id,
    driver: run.driver,
    tier: run.tier,
    exitCode: run.exitCode,
    specHash: run.specHash,
    runtimeFlags: [...run.runtimeFlags],
    limits: { ...run.limits },
    limitsExceeded: [...run.limitsExceeded],
    usage: { ...run.usage },
    escapeSigns: run.escapeSigns.map((sign) => ({ ...sign })),
    durationMs: Math.round(run.durationMs),
    warm: run.warm,
  };
}

export function createHandlers(deps: HandlerDeps): { assess: CommandHandler; schedule: CommandHandler; status: CommandHandler; terminate: CommandHandler; logs: CommandHandler } {
  const { scheduler, events, askPolicy } = deps;
  const finished = new Map<string, { agentId: string; summary: JsonObject; stdout: string; stderr: string }>();
  const owners = new Map<string, string>();

  const assess: CommandHandler = async (req) => {
    const body = readBody(req.body, 'sandbox.assess');
    const { assessment, decision } = scheduler.assess(body['assessment'], parseTierRequest(body['tier']));
    // Every assessment and its inputs go to the ledger; an answer that could not be recorded is not given.
    await events.publish('sandbox.assessed', req.peer, { assessment: { ...assessment }, score: decision.score, level: decision.level, riskTier: decision.riskTier, tier: decision.tier, ...(decision.raisedBy === undefined ? {} : { raisedBy: decision.raisedBy }) });
    return reply({ assessment, decision });
  };

  const schedule: CommandHandler = async (req) => {
    const body = readBody(req.body, 'sandbox.schedule');
    const requestId = body['requestId'];
    if (requestId === undefined) return runSchedule(req, body, undefined);
    if (typeof requestId !== 'string') throw new SandboxInputError('E_SANDBOX_REQUEST', 'sandbox.schedule: requestId must be a string', {});
    // Without a memory of outcomes an id promises what it cannot keep: refused rather than run twice on a retry.
    if (deps.once === undefined) throw new SandboxInputError('E_SANDBOX_REQUEST', 'sandbox.schedule: this scheduler does not take request ids', {});
    return deps.once.run(req.peer, requestId, req.body, () => runSchedule(req, body, requestId));
  };

  const runSchedule = async (req: CommandRequest, body: Record<string, unknown>, requestId: string | undefined): Promise<Uint8Array> => {
    const args = readArgs(body['args']);
    const egress = readEgress(body['egress']);
    const request = parseTierRequest(body['tier']);
    const assessment = parseAssessment(body['assessment']);
    const { decision } = scheduler.assess(assessment, request);
    // A tier no driver here provides is refused before anything else, never run in a weaker one.
    scheduler.driverFor(decision.tier);
    // The caller's request id in the ledger: a retry answered with this run's outcome shows no second schedule.
    const recorded: JsonObject = { ...(requestId === undefined ? {} : { requestId }), assessment: { ...assessment }, score: decision.score, level: decision.level, riskTier: decision.riskTier, tier: decision.tier, ...(decision.raisedBy === undefined ? {} : { raisedBy: decision.raisedBy }) };
    // Resource allocation is an enforcement point (S2.1): the policy service decides first.
    const verdict = await askPolicy(resourceAccessRequest({ action: 'allocate', resource: 'sandbox', classes: ['sandbox'], context: { agent: { id: req.peer }, sandbox: { tier: decision.tier, risk: decision.score, level: decision.level, command: args[0] ?? '', egress: (egress?.rules ?? []).map((r) => `${r.domain ?? r.ipRange ?? ''}:${r.ports.join(',')}`) } } }));
    if (!permits(verdict)) {
      const reason = verdict.decision === 'Deny' ? verdict.reason : `${verdict.decision} (approval is not supported for sandboxes)`;
      await events.publish('sandbox.scheduled', req.peer, { ...recorded, outcome: 'denied', reason });
      throw new SandboxDeniedError('E_SANDBOX_DENIED', `sandbox.schedule: the policy service refused: ${reason}`, { peer: req.peer });
    }
    // Ledger first: a sandbox whose schedule could not be recorded does not run.
    await events.publish('sandbox.scheduled', req.peer, { ...recorded, outcome: 'allowed', command: args[0] ?? '', egress: (egress?.rules ?? []).map((r) => ({ ...r, ports: [...r.ports] })) });
    const result = await scheduler.schedule({ assessment, tier: request, args, ...(egress === undefined ? {} : { egress }) }, req.peer);
    const run = result.run;
    owners.set(run.id, req.peer);
    const summary: JsonObject = { ...runSummary(run), ...(result.egress === undefined ? {} : { egress: result.egress.map((a) => ({ ...a })) }) };
    await events.publish('sandbox.exited', req.peer, summary);
    for (const limit of run.limitsExceeded) {
      await events.publish('sandbox.limit_exceeded', req.peer, { sandboxId: run.id, limit, tier: run.tier, usage: { ...run.usage } });
      if (limit === 'wall_clock') await events.publish('sandbox.killed', req.peer, { sandboxId: run.id, reason: 'wall_clock', tier: run.tier });
    }
    // One event per sign, for incident response (denied syscalls, capability use, read-only writes, forks past the limit).
    for (const sign of run.escapeSigns) {
      await events.publish('sandbox.escape_suspected', req.peer, { sandboxId: run.id, tier: run.tier, driver: run.driver, sign: sign.kind, source: sign.source, reason: describeSign(sign), ...withoutUndefined({ syscall: sign.syscall, comm: sign.comm, path: sign.path, count: sign.count }) });
    }
    finished.set(run.id, { agentId: req.peer, summary, stdout: run.stdout, stderr: run.stderr });
    if (finished.size > 1000) finished.delete(finished.keys().next().value as string);
    return reply({ decision, run: { ...summary, stdout: run.stdout, stderr: run.stderr, truncated: run.truncated }, ...(result.egress === undefined ? {} : { egress: result.egress }) });
  };

  const status: CommandHandler = async (req) => {
    const body = readBody(req.body, 'sandbox.status');
    const running = scheduler.ps().filter((r) => r.agentId === req.peer || deps.terminators.includes(req.peer));
    if (typeof body['sandboxId'] === 'string') {
      const done = finished.get(body['sandboxId']);
      if (done !== undefined && (done.agentId === req.peer || deps.terminators.includes(req.peer))) return reply({ state: 'exited', ...done.summary });
      const live = running.find((r) => r.id === body['sandboxId']);
      return reply(live === undefined ? { state: 'unknown' } : { state: 'running', sandboxId: live.id, tier: live.tier });
    }
    return reply({ running: running.map((r) => ({ sandboxId: r.id, tier: r.tier, agentId: r.agentId ?? null })) });
  };

  const terminate: CommandHandler = async (req) => {
    const body = readBody(req.body, 'sandbox.terminate');
    const sandboxId = typeof body['sandboxId'] === 'string' ? body['sandboxId'] : undefined;
    const agentId = typeof body['agentId'] === 'string' ? body['agentId'] : undefined;
    if ((sandboxId === undefined) === (agentId === undefined)) throw new InputError('E_SANDBOX_REQUEST', 'sandbox.terminate: name exactly one of sandboxId, agentId', {});
    const privileged = deps.terminators.includes(req.peer);
    const own = agentId === req.peer || (sandboxId !== undefined && scheduler.ps().some((r) => r.id === sandboxId && r.agentId === req.peer));
    if (!privileged && !own) throw new SandboxDeniedError('E_SANDBOX_FORBIDDEN', `sandbox.terminate: ${req.peer} may terminate only its own sandboxes`, { peer: req.peer });
    const killed = await scheduler.terminate({ ...(sandboxId === undefined ? {} : { sandboxId }), ...(agentId === undefined ? {} : { agentId }) });
    for (const id of killed) await events.publish('sandbox.killed', agentId ?? owners.get(id) ?? req.peer, { sandboxId: id, reason: 'terminated', by: req.peer });
    return reply({ killed });
  };

  /** The output of a finished sandbox (its agent's, or any for incident response): `{ sandboxId }`. */
  const logs: CommandHandler = async (req) => {
    const body = readBody(req.body, 'sandbox.logs');
    const id = body['sandboxId'];
    if (typeof id !== 'string') throw new InputError('E_SANDBOX_REQUEST', 'sandbox.logs: needs {"sandboxId": string}', {});
    const done = finished.get(id);
    // Unknown and not-yours answer alike, so that ids cannot be probed.
    if (done === undefined || (done.agentId !== req.peer && !deps.terminators.includes(req.peer))) throw new InputError('E_SANDBOX_UNKNOWN', `sandbox.logs: no finished sandbox ${id} of yours`, {});
    return reply({ sandboxId: id, stdout: done.stdout, stderr: done.stderr });
  };

  return { assess, schedule, status, terminate, logs };
}
