import { Commands, Events, type CommandHandler, type CommandSubject, type EventPublisher, type EventSubject } from '@bulwark/bus';
import type { PolicyChangeReply } from '@bulwark/client';
import { encodeEvent, newEvent, type EventType } from '@bulwark/events';
import { PolicyAdminInputError, PolicyServiceError } from './errors.js';
import { parseOne } from './projection.js';
import type { PolicyState } from './start-projection.js';

export interface AdminOptions {
  readonly state: PolicyState;
  /** Sealed to the ledger: a change is a policy event on BULWARK_EVENTS. */
  readonly events: EventPublisher;
  /** Principals allowed to register, update and roll back. */
  readonly admins: readonly string[];
  /** How long a change waits for its committed event to come back (default 5 000 ms). */
  readonly applyWaitMs?: number;
  readonly levels?: readonly string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `bulwark.policy.admin.register|update|rollback`. They change nothing themselves: each
 * publishes a policy event sealed to the ledger and waits for it to come back committed
 * (the projection applies it, in ledger order, like every other instance does).
 */
export function adminHandlers(options: AdminOptions): { readonly [S in CommandSubject]?: CommandHandler } {
  const { state } = options;

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
    const wait = state.awaitCommitted(event.eventId, options.applyWaitMs ?? 5000);
    try {
      await options.events.publish({ subject, eventId: event.eventId, payload: encodeEvent(event) });
      const outcome = await wait.promise;
      if (outcome?.kind === 'skipped') {
        throw new PolicyServiceError('E_POLICY_CONFLICT', `${eventType} of ${String(details['name'])} was committed but not applied: ${outcome.why}`, { eventId: event.eventId });
      }
      return { name: String(details['name']), version: Number(details['version']), eventId: event.eventId, applied: outcome !== undefined, setVersion: outcome === undefined ? null : state.current().version };
    } finally {
      wait.cancel();
    }
  };

  const change = (kind: 'register' | 'update'): CommandHandler => async (req) => {
    const command = `policy.admin.${kind}`;
    requireAdmin(req.peer, command);
    const body = readJson(req.body, command);
    const file = typeof body['file'] === 'string' && body['file'] !== '' ? body['file'] : 'policy';
    const ast = parseOne(body['text'], file, undefined, options.levels);
    if (typeof ast === 'string') throw new PolicyAdminInputError('E_POLICY_TEXT', `${command}: ${ast}`, { file });
    const reply = await serial(async () => {
      const known = state.projection.describe(ast.name);
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
      const known = state.projection.describe(name);
      if (known === undefined) throw new PolicyAdminInputError('E_POLICY_UNKNOWN', `${command}: policy ${name} is not registered`);
      const text = state.projection.textOf(name, to);
      if (text === undefined) throw new PolicyAdminInputError('E_POLICY_VERSION', `${command}: policy ${name} has no version ${to} (versions ${known.versions.join(', ')})`);
      if (known.active === to) throw new PolicyAdminInputError('E_POLICY_VERSION', `${command}: policy ${name} version ${to} is already active`);
      return publishChange('policy.rolledback', Events.policy.rolledback, req.peer, { name, version: to, fromVersion: known.active, text: text.text, file: text.file });
    });
    return encoder.encode(JSON.stringify(reply));
  };

  return { [Commands.policy.adminRegister]: change('register'), [Commands.policy.adminUpdate]: change('update'), [Commands.policy.adminRollback]: rollback };
}

function readJson(body: Uint8Array, command: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(decoder.decode(body));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new PolicyAdminInputError('E_POLICY_ADMIN', `${command}: the body must be a JSON object`);
}
