import { describe, expect, it } from 'vitest';
import { HandshakeLimiter } from './handshake-limiter.js';

describe('HandshakeLimiter', () => {
  it('gives each authenticated principal its burst, then its rate', () => {
    let now = 0;
    const limiter = new HandshakeLimiter({ perSenderPerSecond: 2, perSenderBurst: 3, now: () => now });
    expect([1, 2, 3, 4].map(() => limiter.admitAuthenticated('agent.a'))).toEqual([true, true, true, false]);
    expect(limiter.admitAuthenticated('agent.b')).toBe(true);
    now += 500; // one token back
    expect(limiter.admitAuthenticated('agent.a')).toBe(true);
    expect(limiter.admitAuthenticated('agent.a')).toBe(false);
  });

  it('caps all principals together', () => {
    let now = 0;
    const limiter = new HandshakeLimiter({ globalPerSecond: 10, globalBurst: 5, now: () => now });
    const admitted = Array.from({ length: 50 }, (_, i) => limiter.admitAuthenticated(`agent.p${i}`)).filter(Boolean).length;
    expect(admitted).toBe(5);
    now += 300; // 3 tokens back at 10/s
    expect(Array.from({ length: 50 }, (_, i) => limiter.admitAuthenticated(`agent.q${i}`)).filter(Boolean).length).toBe(3);
  });

  it('does not let a principal past its budget spend the global one', () => {
    const limiter = new HandshakeLimiter({ perSenderPerSecond: 1, perSenderBurst: 1, globalPerSecond: 1, globalBurst: 2, now: () => 0 });
    expect(limiter.admitAuthenticated('agent.noisy')).toBe(true);
    for (let i = 0; i < 100; i++) expect(limiter.admitAuthenticated('agent.noisy')).toBe(false);
    expect(limiter.admitAuthenticated('agent.quiet')).toBe(true);
  });

  it('keeps failures on their own shared budget: spending it leaves every principal\'s budget whole', () => {
    let now = 0;
    const limiter = new HandshakeLimiter({ perSenderPerSecond: 1, perSenderBurst: 1, failuresPerSecond: 10, failureBurst: 3, now: () => now });
    expect(Array.from({ length: 100 }, () => limiter.drawFailure()).filter(Boolean).length).toBe(3);
    expect(limiter.admitAuthenticated('agent.a')).toBe(true);
    now += 100; // one failure token back at 10/s
    expect(limiter.drawFailure()).toBe(true);
    expect(limiter.drawFailure()).toBe(false);
  });

  it('refuses bad limits at construction', () => {
    expect(() => new HandshakeLimiter({ perSenderPerSecond: 0 })).toThrow(RangeError);
    expect(() => new HandshakeLimiter({ globalBurst: 0 })).toThrow(RangeError);
    expect(() => new HandshakeLimiter({ failuresPerSecond: -1 })).toThrow(RangeError);
  });
});
