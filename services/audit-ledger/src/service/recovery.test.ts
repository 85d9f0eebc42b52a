import { describe, expect, it } from 'vitest';
import type { CommandRequest } from '@bulwark/bus';
import { republishCommand, type RecoveryContext } from './recovery.js';

/** A context whose every part fails if touched: a refused caller must reach none of them. */
const untouchable = new Proxy({}, { get: () => { throw new Error('touched'); } });
const ctx = { bus: untouchable, db: untouchable, ledger: untouchable, crypto: untouchable, republisher: untouchable, admins: ['analyst.admin'] } as unknown as RecoveryContext;
const request = (peer: string, body: unknown): CommandRequest => ({ subject: 'bulwark.audit.republish', body: new TextEncoder().encode(JSON.stringify(body)), peer, sessionId: 's' });

describe('bulwark.audit.republish', () => {
  it('refuses anyone but a ledger administrator before it looks at anything', async () => {
    for (const peer of ['svc.policy', 'agent.00000000-0000-4000-8000-000000000000', 'analyst.other']) {
      await expect(republishCommand(ctx, request(peer, { apply: true }))).rejects.toMatchObject({ code: 'E_LEDGER_FORBIDDEN' });
    }
  });

  it('refuses a malformed body, and hold with apply together', async () => {
    await expect(republishCommand(ctx, request('analyst.admin', { apply: 'yes' }))).rejects.toThrow(/apply must be a boolean/);
    await expect(republishCommand(ctx, request('analyst.admin', { hold: true, apply: true }))).rejects.toThrow(/two steps/);
  });
});
