import { describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { isUuidV7, newEventId, validateEvent } from '@bulwark/events';
import { ForbiddenProducerError } from '../errors.js';
import { ViolationRecorder, type RefusedDelivery } from './violations.js';

const crypto = createCryptoProvider('node');
const AGENT = 'agent.mallory';

function delivery(counter: number, sender = AGENT): RefusedDelivery {
  return { subject: 'bulwark.evt.policy.updated', meta: { sender, sessionId: 'session-1', counter: BigInt(counter) }, msgId: `m-${counter}`, streamSeq: 100 + counter };
}

const claimedId = newEventId(1_732_579_200_000);
const forbidden = (messageEvents?: number) =>
  new ForbiddenProducerError({ producer: AGENT, eventType: 'policy.updated', agentId: AGENT, eventId: claimedId, reason: `policy.updated may be produced only by svc.policy, not by ${AGENT}`, ...(messageEvents === undefined ? {} : { messageEvents }) });

function recorder(now: { t: number }, secret = new Uint8Array(64).fill(7), budget = { burst: 3, refillMs: 1000 }) {
  return new ViolationRecorder({ crypto, ledgerId: 'svc.audit-ledger', secret, budget, now: () => now.t });
}

describe('ViolationRecorder', () => {
  it('records a refused rotation of the ledger key as a valid security.violation, with the same id for the same frame', () => {
    const now = { t: 1_767_225_600_000 };
    const refusal = { kind: 'ledger.rotation_key_not_held' as const, eventId: claimedId, version: 4, why: 'rotation of the ledger key to version 4: svc.audit-ledger does not hold its private key' };
    const from = delivery(5, 'svc.key-manager');
    const event = recorder(now).ownRotation(from, refusal, 1)!;
    expect(() => validateEvent(event)).not.toThrow();
    expect(event).toMatchObject({ agentId: 'svc.key-manager', eventType: 'security.violation' });
    expect(event.details).toMatchObject({ kind: 'ledger.rotation_key_not_held', producer: 'svc.key-manager', claimed_event_id: claimedId, claimed_version: 4, refused_events: 1, stream_seq: 105 });
    // Another process with the same (genesis) secret, e.g. after the ledger rotated and restarted: the same id.
    expect(recorder({ t: now.t + 5000 }).ownRotation(from, refusal, 1)!.eventId).toBe(event.eventId);
  });

  it('records a forbidden event as a valid security.violation naming the real producer and what it claimed', () => {
    const now = { t: 1_767_225_600_000 };
    const event = recorder(now).forbidden(delivery(1), forbidden(4))!;
    expect(() => validateEvent(event)).not.toThrow();
    expect(event).toMatchObject({ agentId: AGENT, eventType: 'security.violation', timestamp: now.t });
    expect(event.details).toEqual({
      kind: 'ledger.forbidden_producer',
      producer: AGENT,
      claimed_event_type: 'policy.updated',
      claimed_agent_id: AGENT,
      claimed_event_id: claimedId,
      subject: 'bulwark.evt.policy.updated',
      reason: `policy.updated may be produced only by svc.policy, not by ${AGENT}`,
      refused_events: 4,
      msg_id: 'm-1',
      stream_seq: 101,
    });
  });

  it('gives a redelivered frame the same id, another frame another, and ids nobody without the key can predict', () => {
    const now = { t: 1_767_225_600_000 };
    const a = recorder(now);
    const first = a.forbidden(delivery(1), forbidden())!.eventId;
    expect(isUuidV7(first)).toBe(true);
    // The claimed event's time, so the same frame gives the same id whenever it is refused.
    expect(first.slice(0, 13)).toBe(claimedId.slice(0, 13));
    now.t += 5000;
    expect(a.forbidden(delivery(1), forbidden())!.eventId).toBe(first);
    expect(a.forbidden(delivery(2), forbidden())!.eventId).not.toBe(first);
    expect(recorder(now, new Uint8Array(64).fill(8)).forbidden(delivery(1), forbidden())!.eventId).not.toBe(first);
  });

  it('records at most `burst` violations of a flood, counts the rest, and reports them with the next one or in a summary', () => {
    const now = { t: 0 };
    const r = recorder(now);
    const recorded = Array.from({ length: 50 }, (_, i) => r.forbidden(delivery(i), forbidden(2))).filter((e) => e !== undefined);
    expect(recorded).toHaveLength(3);
    expect(r.suppressed).toBe(47);
    expect(r.flush()).toEqual([]); // no budget yet
    // One refill later the next refused message carries the count of what was suppressed before it.
    now.t += 1000;
    const next = r.forbidden(delivery(60), forbidden(1))!;
    expect(next.details).toMatchObject({ suppressed_messages: 47, suppressed_events: 94, refused_events: 1 });
    // More suppressed, then quiet: flush records one summary per producer once the budget allows.
    for (let i = 0; i < 5; i++) expect(r.forbidden(delivery(70 + i), forbidden(3))).toBeUndefined();
    now.t += 1000;
    const [summary, ...rest] = r.flush();
    expect(rest).toEqual([]);
    expect(summary).toMatchObject({ agentId: AGENT, eventType: 'security.violation', details: { kind: 'ledger.violations_suppressed', producer: AGENT, suppressed_messages: 5, suppressed_events: 15 } });
    expect(() => validateEvent(summary)).not.toThrow();
    now.t += 10_000;
    expect(r.flush()).toEqual([]);
  });

  it('keeps one budget per producer', () => {
    const now = { t: 0 };
    const r = recorder(now);
    for (let i = 0; i < 3; i++) expect(r.forbidden(delivery(i), forbidden())).toBeDefined();
    expect(r.forbidden(delivery(9), forbidden())).toBeUndefined();
    expect(r.undecodable(delivery(1, 'agent.other'), new InputError('E_EVENT_DECODE', 'not an event'))).toMatchObject({ agentId: 'svc.audit-ledger', details: { kind: 'ledger.undecodable', sender: 'agent.other' } });
  });
});
