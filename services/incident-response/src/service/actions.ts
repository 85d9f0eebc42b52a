/**
 * The mitigations of S7.3, each a call to the service that owns the thing changed: the policy
 * service (containment by a deny policy on the authenticated caller), the sandbox scheduler
 * (`bulwark.sandbox.terminate`), the key manager (`bulwark.keys.revoke`) and the ledger
 * (`bulwark.audit.proof.inclusion`: the evidence proven against a signed checkpoint). Each
 * returns what it did or throws; the workflow records either as a ledger event.
 */
import { createHash } from 'node:crypto';
import { Commands, type CommandClient, type CommandSubject } from '@bulwark/bus';
import type { BulwarkClient } from '@bulwark/client';
import { BulwarkError } from '@bulwark/errors';
import type { JsonObject } from '@bulwark/events';
import type { SecurityEvent } from '../incidents/security-event.js';

const decoder = new TextDecoder();

/** The containment policy's name for an agent: one per agent, whatever the incident. */
export function containmentPolicyName(agentId: string): string {
  return `incident_contain_${createHash('sha256').update(agentId).digest('hex').slice(0, 16)}`;
}

/** Denies every request whose authenticated caller is the agent (policy-language `caller`, bound by the policy service). */
export function containmentPolicy(agentId: string): string {
  // A principal id has no quote or backslash (isPrincipalId), so it is a safe string literal.
  if (!/^[A-Za-z0-9._:@/+-]+$/.test(agentId)) throw new BulwarkError('E_INCIDENT_CONTAIN', `cannot contain ${agentId}: not a principal id`, { agentId });
  return `// contained by svc.incident-response\npolicy ${containmentPolicyName(agentId)} {\n    deny: any if caller.id == "${agentId}"\n}\n`;
}

export interface ActionPorts {
  readonly client: BulwarkClient;
  readonly commands: CommandClient;
  readonly timeoutMs?: number;
}

async function call(ports: ActionPorts, subject: CommandSubject, body: unknown, idempotent: boolean): Promise<JsonObject> {
  const reply = await ports.commands.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: ports.timeoutMs ?? 5000, idempotent });
  const value = JSON.parse(decoder.decode(reply)) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BulwarkError('E_INCIDENT_REPLY', `malformed reply to ${subject}`, { subject });
  return value as JsonObject;
}

/** The containment policy released (recovery's rollback): the same name, no rule. */
export function releasedPolicy(agentId: string): string {
  containmentPolicy(agentId);
  return `// released by svc.incident-response (recovery)\npolicy ${containmentPolicyName(agentId)} {\n}\n`;
}

/**
 * Registers the containment policy. A refused registration sends it to the list: a policy there
 * with its rule is in force (a retry after a crash between the change and its record); one an
 * earlier recovery released (no rule) is updated back to the deny. The list is asked only then,
 * so the first attempt costs one round trip.
 */
export async function containAgent(ports: ActionPorts, agentId: string): Promise<string> {
  const name = containmentPolicyName(agentId);
  const file = `incident-response/${name}.policy`;
  let reply: Awaited<ReturnType<BulwarkClient['policyAdmin']['register']>>;
  try {
    reply = await ports.client.policyAdmin.register(containmentPolicy(agentId), file);
  } catch (e) {
    const current = (await ports.client.policyAdmin.list().catch(() => undefined))?.policies.find((p) => p.name === name);
    if (current === undefined) throw e;
    if (current.rules > 0) return `policy ${name} already in force`;
    reply = await ports.client.policyAdmin.update(containmentPolicy(agentId), file);
  }
  if (!reply.applied) throw new BulwarkError('E_INCIDENT_CONTAIN', `policy ${name} registered (event ${reply.eventId}) but not applied yet`, { name });
  return `policy ${name} v${reply.version} in force (set ${reply.setVersion ?? '?'})`;
}

/** Recovery's rollback of the containment: a policy change (a new version with no rule), itself a ledger event, as containment was. */
export async function releaseAgent(ports: ActionPorts, agentId: string): Promise<string> {
  const name = containmentPolicyName(agentId);
  const list = await ports.client.policyAdmin.list();
  const current = list.policies.find((p) => p.name === name);
  if (current === undefined) return `no containment policy ${name}: nothing to roll back`;
  if (current.rules === 0) return `policy ${name} already released (v${current.activeVersion})`;
  const reply = await ports.client.policyAdmin.update(releasedPolicy(agentId), `incident-response/${name}.policy`);
  if (!reply.applied) throw new BulwarkError('E_INCIDENT_RECOVERY', `policy ${name} released (event ${reply.eventId}) but not applied yet`, { name });
  return `policy ${name} v${reply.version} released: ${agentId} no longer denied by it (set ${reply.setVersion ?? '?'})`;
}

/**
 * Every sandbox of the agent, at once; then again once the deny policy had its attempt
 * (`denyInForce` settles then, never rejects): a sandbox the agent had scheduled in between,
 * still allowed by the policy service, does not survive the sweep.
 */
export async function terminateSandboxes(ports: ActionPorts, agentId: string, denyInForce: Promise<unknown>): Promise<string> {
  const sweep = async () => {
    const reply = await call(ports, Commands.sandbox.terminate, { agentId }, false);
    return Array.isArray(reply['killed']) ? reply['killed'].length : 0;
  };
  const first = await sweep();
  await denyInForce;
  const late = await sweep();
  return `${first + late} sandbox(es) of ${agentId} terminated${late > 0 ? ` (${late} started before the deny was in force)` : ''}`;
}

export async function revokeKeys(ports: ActionPorts, agentId: string): Promise<string> {
  try {
    await call(ports, Commands.keys.revoke, { principal: agentId, reason: 'key_compromise' }, false);
  } catch (e) {
    // A retry after a crash between the revocation and its record: the key manager refuses to revoke
    // again, and what was asked for holds if none of the agent's versions verifies any more.
    const key = await call(ports, Commands.keys.get, { principal: agentId }, true).catch(() => undefined);
    const versions = Array.isArray(key?.['versions']) ? (key['versions'] as JsonObject[]) : [];
    if (key?.['activeVersion'] === null && versions.length > 0 && versions.every((v) => v['verifies'] === false)) return `keys of ${agentId} already revoked`;
    throw e;
  }
  return `keys of ${agentId} revoked (key_compromise)`;
}

/** The evidence: its seqs and an inclusion proof of the last one against a signed checkpoint. */
export async function preserveEvidence(ports: ActionPorts, incident: SecurityEvent): Promise<{ detail: string; proof: JsonObject }> {
  const proof = await call(ports, Commands.audit.proofInclusion, { seq: incident.evidence.lastSeq }, true);
  if (typeof proof['treeSize'] !== 'number' || !Array.isArray(proof['proof'])) throw new BulwarkError('E_INCIDENT_REPLY', 'malformed inclusion proof', {});
  return { detail: `seq ${incident.evidence.lastSeq} proven in a tree of ${proof['treeSize']}`, proof };
}
