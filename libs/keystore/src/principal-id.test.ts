import { describe, expect, it } from 'vitest';
import { InputError } from '@bulwark/errors';
import { isKeyOwner, isPrincipalId, parsePrincipalId, requirePrincipalId } from './principal-id.js';

describe('principal ids', () => {
  it('accepts service, agent and analyst ids and says which kind', () => {
    expect(parsePrincipalId('svc.audit-ledger')).toEqual({ id: 'svc.audit-ledger', kind: 'svc', name: 'audit-ledger' });
    expect(parsePrincipalId('agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f')?.kind).toBe('agent');
    expect(parsePrincipalId('analyst.j_doe')?.kind).toBe('analyst');
  });

  it.each([
    ['', 'empty'],
    ['svc', 'no name'],
    ['svc.', 'empty name'],
    ['svc.Policy', 'uppercase'],
    ['svc.pol:icy', 'a colon (envelope allows it, NATS KV keys do not)'],
    ['svc.a.b', 'a second dot'],
    ['bot.x', 'an unknown kind'],
    ['agent.not-a-uuid', 'an agent without a uuid'],
    ['agent.3F2A6C1E-9B7D-4E2A-8C1F-0A1B2C3D4E5F', 'an uppercase uuid'],
    ['analyst.j doe', 'a space'],
    ['analyst.é', 'a non-ASCII letter'],
    [`svc.${'a'.repeat(64)}`, 'a name over 63 characters'],
    ['root', 'the root key owner, which is not a principal'],
  ])('rejects %j (%s)', (id) => {
    expect(isPrincipalId(id)).toBe(false);
  });

  it('throws a one-line input error naming where the id came from', () => {
    const error = (() => {
      try {
        requirePrincipalId('svc.Bad', 'directory entry');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('E_PRINCIPAL_ID');
    expect((error as InputError).message).toMatch(/^directory entry: "svc.Bad" is not a principal id; expected svc.<service>/);
    expect((error as InputError).message).not.toContain('\n');
  });

  it('lets the store hold the root key under "root" and nothing else outside the principal syntax', () => {
    expect(isKeyOwner('root')).toBe(true);
    expect(isKeyOwner('svc.policy')).toBe(true);
    expect(isKeyOwner('Root')).toBe(false);
    expect(isKeyOwner('../etc')).toBe(false);
  });
});
