import { Commands, type CommandClient, type CommandSubject } from '@bulwark/bus';
import type { BulwarkClient } from '@bulwark/client';
import { describe, expect, it } from 'vitest';
import { terminateSandboxes } from './actions.js';

/** The sandbox scheduler's terminate, on a set of running sandboxes: kills what runs, answers the ids. */
function fakeScheduler(running: Set<string>) {
  const calls: string[] = [];
  const commands = {
    request: async (subject: CommandSubject, body: Uint8Array) => {
      expect(subject).toBe(Commands.sandbox.terminate);
      calls.push((JSON.parse(new TextDecoder().decode(body)) as { agentId: string }).agentId);
      const killed = [...running];
      running.clear();
      return new TextEncoder().encode(JSON.stringify({ killed }));
    },
  } as unknown as CommandClient;
  return { ports: { client: {} as BulwarkClient, commands }, calls };
}

describe('sandbox termination during containment', () => {
  it('sweeps at once and again once the deny is in force: a sandbox the agent started in between does not survive', async () => {
    const running = new Set(['sb-1']);
    const { ports, calls } = fakeScheduler(running);
    let inForce!: () => void;
    const denyInForce = new Promise<void>((r) => (inForce = r));
    const done = terminateSandboxes(ports, 'agent.a', denyInForce);
    await new Promise((r) => setTimeout(r, 10));
    // The first sweep ran without waiting for the policy change; the second waits for it.
    expect(calls).toEqual(['agent.a']);
    expect(running.size).toBe(0);
    // Before the deny is in force the agent's schedule is still allowed: a new sandbox starts.
    running.add('sb-2');
    inForce();
    expect(await done).toBe('2 sandbox(es) of agent.a terminated (1 started before the deny was in force)');
    expect(calls).toEqual(['agent.a', 'agent.a']);
    expect(running.size).toBe(0);
  });
});
