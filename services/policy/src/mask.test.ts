import { describe, expect, it } from 'vitest';
import { createMasker, MASKED } from './mask.js';

describe('createMasker', () => {
  const request = { action: 'read', context: { user: { ssn: '123', name: 'ann' }, users: [{ ssn: '1' }, { ssn: '2', x: 1 }, 'n'] } };

  it('masks dotted paths, through lists, without touching the input', () => {
    const mask = createMasker({ paths: ['context.user.ssn', 'context.users.ssn', 'context.absent.field', 'action.nope'] });
    expect(mask(request)).toEqual({ action: 'read', context: { user: { ssn: MASKED, name: 'ann' }, users: [{ ssn: MASKED }, { ssn: MASKED, x: 1 }, 'n'] } });
    expect(request.context.user.ssn).toBe('123');
  });

  it('masks a whole subtree, and with a key writes a keyed hash that correlates equal values', () => {
    const key = new Uint8Array(32).fill(7);
    const mask = createMasker({ paths: ['context.user'], key });
    const a = mask(request) as { context: { user: string } };
    const b = mask(structuredClone(request)) as { context: { user: string } };
    expect(a.context.user).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(a.context.user).toBe(b.context.user);
    const other = createMasker({ paths: ['context.user'], key: new Uint8Array(32).fill(8) })(request) as { context: { user: string } };
    expect(other.context.user).not.toBe(a.context.user);
  });

  it('returns the request unchanged without paths', () => {
    expect(createMasker({ paths: [] })(request)).toBe(request);
  });
});
