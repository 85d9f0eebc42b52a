// `keys.request-rotation` in NATS operator mode (operator-world.ts): agents connect under their
// own NATS users (the agent permission table), so what reaches the key manager is what the bus
// lets an agent send. An agent asks for its own rotation; another agent asking for it reaches the
// key manager too (not only the bus's refusal) and is refused there and recorded in the ledger.
import { CommandClient } from '@bulwark/bus';
import { createKeyCalls } from '@bulwark/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperatorWorld, type EnrolledAgent, type OperatorWorld } from './operator-world.js';
import { ADMIN, KM, provider, silentReporter } from './world.js';

let w: OperatorWorld;
beforeAll(async () => {
  w = await startOperatorWorld();
}, 90_000);
afterAll(async () => {
  await w?.close();
});

async function keyCallsOf(agent: EnrolledAgent) {
  const client = new CommandClient(agent.bus, { sessions: { provider, self: agent.identity, directory: await w.h.directory() }, rejections: silentReporter(agent.id) });
  return createKeyCalls(provider, async (subject, body) => JSON.parse(new TextDecoder().decode(await client.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 3000 }))) as unknown);
}

describe('keys.request-rotation under the agent permission table (operator mode)', () => {
  it('an agent asks it for itself; for another agent it is refused by the key manager and recorded', async () => {
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    const reader = await w.h.directory();
    const victim = await w.enrollAgent(admin, reader);
    const other = await w.enrollAgent(admin, reader);
    const own = await keyCallsOf(victim);
    expect(await own.requestRotation(victim.id)).toMatchObject({ rotationDue: true, rotationRequested: { by: victim.id, reason: 'on_demand' } });
    const attacker = await keyCallsOf(other);
    await expect(attacker.requestRotation(victim.id, 'compromise')).rejects.toMatchObject({ context: { remoteCode: 'E_KEYS_FORBIDDEN' } });
    const deadline = Date.now() + 5000;
    const refused = () => w.h.ledger.committed.filter((e) => e.eventType === 'security.violation' && e.details['kind'] === 'keys.rotation_request_refused');
    while (refused().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(refused().map((e) => [e.producer, e.agentId, e.details['principal']])).toEqual([[KM, other.id, victim.id]]);
    // The compromise was not recorded: the outstanding request is still the victim's own.
    expect((await own.get(victim.id)).rotationRequested).toMatchObject({ by: victim.id, reason: 'on_demand' });
  }, 60_000);
});
