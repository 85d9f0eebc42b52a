import { describe, expect, it } from 'vitest';
import { PRODUCER_RULES, checkProducer } from './authority.js';
import { EVENT_TYPES, type EventType } from './event-types.js';

const AGENT = 'agent.7f3c9a12';
const OTHER = 'agent.0b1d2e3f';

/** The table of DESIGN §3a / CONTRACTS §2, written out independently of PRODUCER_RULES. */
function expectedOwner(type: EventType): string | 'self-or-service' | 'any-service' | 'any-principal' {
  const [area, name] = type.split('.') as [string, string];
  if (area === 'policy') return 'svc.policy';
  if (area === 'audit') return 'svc.audit-ledger';
  if (area === 'keys') return 'svc.key-manager';
  if (area === 'sandbox' || area === 'resource') return 'svc.sandbox-scheduler';
  if (area === 'incident') return 'svc.incident-response';
  if (area === 'tools') return ['invoked', 'completed', 'failed'].includes(name) ? 'self-or-service' : 'svc.schemapin';
  if (area === 'agent' || area === 'message' || area === 'data') return 'self-or-service';
  if (type === 'bus.rejected') return 'any-principal';
  if (type === 'security.violation' || type === 'auth.failed' || type === 'alert.raised') return 'any-service';
  throw new Error(`no expectation for ${type}`);
}

describe('PRODUCER_RULES', () => {
  it('has a rule for every event type, matching the table of DESIGN §3a', () => {
    expect(Object.keys(PRODUCER_RULES).sort()).toEqual([...EVENT_TYPES].sort());
    for (const type of EVENT_TYPES) {
      const rule = PRODUCER_RULES[type];
      const expected = expectedOwner(type);
      expect(rule.kind === 'service' ? rule.service : rule.kind, type).toBe(expected);
    }
  });

  it('cannot be changed at run time', () => {
    expect(Object.isFrozen(PRODUCER_RULES)).toBe(true);
    expect(Object.isFrozen(PRODUCER_RULES['policy.updated'])).toBe(true);
  });
});

describe('checkProducer', () => {
  it('lets each owning service produce its types and nobody else', () => {
    for (const type of EVENT_TYPES) {
      const owner = expectedOwner(type);
      if (!owner.startsWith('svc.')) continue;
      expect(checkProducer(owner, type, owner), type).toBeNull();
      expect(checkProducer(owner, type, AGENT), type).toBeNull();
      for (const intruder of [AGENT, 'analyst.alice', 'svc.intruder', owner === 'svc.policy' ? 'svc.audit-ledger' : 'svc.policy']) {
        expect(checkProducer(intruder, type, intruder), `${intruder} ${type}`).toBe(`${type} may be produced only by ${owner}, not by ${intruder}`);
      }
    }
  });

  it('refuses an agent sealing policy.updated, about itself or anyone', () => {
    expect(checkProducer(AGENT, 'policy.updated', AGENT)).toBe(`policy.updated may be produced only by svc.policy, not by ${AGENT}`);
    expect(checkProducer(AGENT, 'policy.updated', 'svc.policy')).not.toBeNull();
    expect(checkProducer('svc.policy', 'policy.updated', 'analyst.alice')).toBeNull();
  });

  it('lets an agent report its own activity, any service report anyone’s, and nobody else', () => {
    for (const type of ['agent.started', 'message.sent', 'tools.invoked', 'data.accessed'] as const) {
      expect(checkProducer(AGENT, type, AGENT)).toBeNull();
      expect(checkProducer('svc.sandbox-scheduler', type, AGENT)).toBeNull();
      expect(checkProducer(AGENT, type, OTHER)).toBe(`${type} about ${OTHER} may be produced only by ${OTHER} itself or a service (svc.*), not by ${AGENT}`);
      expect(checkProducer(AGENT, type, 'svc.policy')).toBe(`${type} about svc.policy may be produced only by a service (svc.*), not by ${AGENT}`);
      // An analyst is not an agent: agent_id = producer does not make it one.
      expect(checkProducer('analyst.alice', type, 'analyst.alice')).not.toBeNull();
    }
  });

  it('lets only services raise violations, auth failures and alerts, and anyone report a bus rejection', () => {
    for (const type of ['security.violation', 'auth.failed', 'alert.raised'] as const) {
      expect(checkProducer('svc.audit-ledger', type, AGENT)).toBeNull();
      expect(checkProducer(AGENT, type, AGENT)).toBe(`${type} may be produced only by a service (svc.*), not by ${AGENT}`);
      expect(checkProducer('analyst.alice', type, AGENT)).not.toBeNull();
    }
    for (const producer of [AGENT, 'analyst.alice', 'svc.policy']) expect(checkProducer(producer, 'bus.rejected', OTHER)).toBeNull();
  });

  it('lets an analyst produce bus.rejected only', () => {
    const allowed = EVENT_TYPES.filter((type) => checkProducer('analyst.alice', type, 'analyst.alice') === null);
    expect(allowed).toEqual(['bus.rejected']);
  });

  it('refuses unknown types and producers that are not principal ids', () => {
    expect(checkProducer('svc.policy', 'policy.deleted', AGENT)).toBe('"policy.deleted" is not a known event type');
    expect(checkProducer('', 'bus.rejected', AGENT)).toBe('producer "" is not a principal id');
    expect(checkProducer('svc.', 'security.violation', AGENT)).toBe('producer "svc." is not a principal id');
    expect(checkProducer('root', 'bus.rejected', AGENT)).not.toBeNull();
  });
});
