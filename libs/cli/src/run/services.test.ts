import { describe, expect, it } from 'vitest';
import { SERVICES, serviceEntryPoint, startStages, type ServiceSpec } from './services.js';

const spec = (name: string, startsAfter: string[] = []): ServiceSpec => ({ ...SERVICES[0]!, name, startsAfter });

describe('the services bulwark up runs', () => {
  it('lists every service once, each with an installed entry point', () => {
    expect(SERVICES.map((s) => s.name)).toEqual(['audit-ledger', 'policy', 'key-manager', 'schemapin', 'sandbox-scheduler', 'incident-response']);
    expect(new Set(SERVICES.map((s) => s.principal)).size).toBe(SERVICES.length);
    for (const s of SERVICES) expect(serviceEntryPoint(s)).toMatch(/main\.js$/);
  });

  it('starts the ledger first: every service that replays it at start comes after', () => {
    const stages = startStages(SERVICES).map((stage) => stage.map((s) => s.name));
    expect(stages).toEqual([['audit-ledger'], ['policy', 'key-manager', 'schemapin', 'sandbox-scheduler', 'incident-response']]);
  });

  it('refuses an order it cannot follow', () => {
    expect(() => startStages([spec('a', ['b'])])).toThrow('service a starts after b, which is not a service');
    expect(() => startStages([spec('a', ['b']), spec('b', ['a'])])).toThrow('has a cycle among a, b');
  });
});
