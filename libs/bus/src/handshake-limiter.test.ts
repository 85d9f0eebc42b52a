import { describe, expect, it } from 'vitest';
import { HandshakeLimiter } from './handshake-limiter.js';

describe('HandshakeLimiter', () => {
  it('gives each claimed sender its burst, then its rate', () => {
    let now = 0;
    const limiter = new HandshakeLimiter({ perSenderPerSecond: 2, perSenderBurst: 3, now: () => now });
    expect([1, 2, 3, 4].map(() => limiter.admit('agent.a'))).toEqual([true, true, true, false]);
    expect(limiter.admit('agent.b')).toBe(true);
    now += 500; // one token back
    expect(limiter.admit('agent.a')).toBe(true);
    expect(limiter.admit('agent.a')).toBe(false);
  });

  it('caps all senders together, so forged sender ids do not multiply the budget', () => {
    let now = 0;
    const limiter = new HandshakeLimiter({ globalPerSecond: 10, globalBurst: 5, now: () => now });
    const admitted = Array.from({ length: 50 }, (_, i) => limiter.admit(`agent.forged${i}`)).filter(Boolean).length;
    expect(admitted).toBe(5);
    now += 300; // 3 tokens back at 10/s
    expect(Array.from({ length: 50 }, (_, i) => limiter.admit(`agent.other${i}`)).filter(Boolean).length).toBe(3);
  });

  it('does not let a sender past its budget spend the global one', () => {
    const limiter = new HandshakeLimiter({ perSenderPerSecond: 1, perSenderBurst: 1, globalPerSecond: 1, globalBurst: 2, now: () => 0 });
    expect(limiter.admit('agent.noisy')).toBe(true);
    for (let i = 0; i < 100; i++) expect(limiter.admit('agent.noisy')).toBe(false);
    expect(limiter.admit('agent.quiet')).toBe(true);
  });

  it('refuses bad limits at construction', () => {
    expect(() => new HandshakeLimiter({ perSenderPerSecond: 0 })).toThrow(RangeError);
    expect(() => new HandshakeLimiter({ globalBurst: 0 })).toThrow(RangeError);
  });
});
