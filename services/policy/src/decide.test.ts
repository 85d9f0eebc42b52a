import { describe, expect, it } from 'vitest';
import { compilePolicySources, DecisionCache } from '@bulwark/policy-language';
import { Decider } from './decide.js';

const set = compilePolicySources([
  { text: 'policy open {\n    allow: read(vault)\n}\n' },
  { text: 'policy incident_contain_x {\n    deny: any if caller.id == "agent.bad"\n}\n' },
]);
const READ = JSON.stringify({ action: 'read', resource: 'vault' });

describe('the authenticated caller in policy evaluation', () => {
  it('binds caller.id to the session peer, whatever the request claims', () => {
    const decider = new Decider({ cache: new DecisionCache() });
    expect(set.readsCaller).toBe(true);
    expect(decider.decide(set, 'agent.good', READ).decision).toBe('Allow');
    expect(decider.decide(set, 'agent.bad', READ).decision).toBe('Deny');
    // The bad agent claims to be another caller: the peer wins.
    const spoof = JSON.stringify({ action: 'read', resource: 'vault', context: { caller: { id: 'agent.good' } } });
    expect(decider.decide(set, 'agent.bad', spoof).decision).toBe('Deny');
    // A good agent's request cached first does not answer for the bad one.
    expect(decider.decide(set, 'agent.good', spoof).decision).toBe('Allow');
    expect(decider.decide(set, 'agent.bad', spoof).decision).toBe('Deny');
  });

  it('leaves sets that never read caller on the text path', () => {
    const plain = compilePolicySources([{ text: 'policy open {\n    allow: read(vault)\n}\n' }]);
    expect(plain.readsCaller).toBe(false);
    expect(new Decider({ cache: new DecisionCache() }).decide(plain, 'agent.bad', READ).decision).toBe('Allow');
  });
});
