import type { Bus } from '@bulwark/bus';
import { createUser } from '@nats-io/nkeys';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startCredentialRenewal } from './credential-renewal.js';

const DAY_MS = 24 * 3600 * 1000;
const user = createUser();
const seed = user.getSeed();
const unsigned = (claims: Record<string, unknown>): string => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
const jwt = (iatMs: number, expMs: number | undefined, sub = user.getPublicKey()): string =>
  unsigned({ sub, name: 'svc.policy', iat: Math.floor(iatMs / 1000), ...(expMs === undefined ? {} : { exp: Math.floor(expMs / 1000) }) });

function fakeBus() {
  const presented: string[] = [];
  return { bus: { renewCredentials: (c: { jwt: string }) => void presented.push(c.jwt) } as unknown as Bus, presented };
}

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('startCredentialRenewal', () => {
  it("waits for half of a 90-day JWT's life (past setTimeout's 24.8-day limit) and accepts a shorter renewal", async () => {
    const now = Date.now();
    const { bus, presented } = fakeBus();
    const renew = vi.fn(async () => ({ natsJwt: jwt(Date.now(), Date.now() + DAY_MS) }));
    const renewal = startCredentialRenewal({ bus, credentials: { jwt: jwt(now, now + 90 * DAY_MS), seed }, renew });
    await vi.advanceTimersByTimeAsync(44 * DAY_MS);
    expect(renew).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1 * DAY_MS + 1000);
    expect(renew).toHaveBeenCalledTimes(1);
    expect(presented).toHaveLength(1);
    // The 24-hour renewal is itself renewed at its half-life.
    expect(renewal.expires).toBe(Math.floor((now + 45 * DAY_MS + DAY_MS) / 1000) * 1000);
    await vi.advanceTimersByTimeAsync(DAY_MS / 2 + 1000);
    expect(renew).toHaveBeenCalledTimes(2);
    renewal.stop();
  });

  it('refuses a renewed JWT that never expires, expires too soon, or is for another user, and retries', async () => {
    const now = Date.now();
    const { bus, presented } = fakeBus();
    const replies = [jwt(now, undefined), jwt(now, now + 6000), jwt(now, now + DAY_MS, createUser().getPublicKey())];
    const errors: string[] = [];
    const renew = vi.fn(async () => ({ natsJwt: replies.shift() ?? jwt(Date.now(), Date.now() + DAY_MS) }));
    const renewal = startCredentialRenewal({ bus, credentials: { jwt: jwt(now, now + 10_000), seed }, renew, minRetryMs: 1000, onError: (e) => void errors.push((e as Error).message) });
    await vi.advanceTimersByTimeAsync(5000);
    expect(errors[0]).toMatch(/never expires/);
    await vi.advanceTimersByTimeAsync(1000);
    expect(errors[1]).toMatch(/too soon to be a renewal/);
    await vi.advanceTimersByTimeAsync(1000);
    expect(errors[2]).toMatch(/is for U/);
    expect(presented).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(presented).toHaveLength(1);
    renewal.stop();
  });
});
