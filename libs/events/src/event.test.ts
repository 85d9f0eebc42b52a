import { describe, expect, it } from 'vitest';
import { InputError } from '@bulwark/errors';
import { EVENT_TYPES, eventCategory, eventSubject, eventTypeFromSubject, isEventType } from './event-types.js';
import { MAX_DETAILS_BYTES, canonicalDetails, isUuidV7, newEvent, newEventId, validateEvent, validateEventCanonical } from './event.js';

const good = {
  eventId: '0192f5a0-1c00-7abc-8def-0123456789ab',
  timestamp: 1732579200000,
  agentId: 'agent.7f3c9a12',
  eventType: 'policy.decision',
  details: { decision: 'Allow' },
};

function codeOf(input: unknown): string {
  try {
    validateEvent(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as InputError).code;
  }
  throw new Error('validateEvent accepted the input');
}

describe('event types', () => {
  it('names every type after its subject and gives it a category', () => {
    expect(EVENT_TYPES).toContain('policy.decision');
    expect(EVENT_TYPES).toContain('bus.rejected');
    for (const type of EVENT_TYPES) {
      expect(type).toMatch(/^[a-z]+\.[a-z_]+$/);
      expect(eventCategory(type)).toBeTypeOf('string');
    }
    expect(eventSubject('sandbox.escape_suspected')).toBe('bulwark.evt.sandbox.escape_suspected');
    expect(isEventType('policy.nope')).toBe(false);
    expect(eventTypeFromSubject('bulwark.evt.keys.rotated')).toBe('keys.rotated');
    expect(eventTypeFromSubject('bulwark.evt.keys.nope')).toBeUndefined();
    expect(eventTypeFromSubject('bulwark.policy.evaluate')).toBeUndefined();
  });
});

describe('validateEvent', () => {
  it('accepts a good event and normalises the id to lowercase', () => {
    const event = validateEvent({ ...good, eventId: good.eventId.toUpperCase() });
    expect(event).toEqual(good);
  });

  it('copies details so that later changes to the input cannot alter what was checked', () => {
    const details = { decision: 'Allow' };
    const event = validateEvent({ ...good, details });
    details.decision = 'Deny';
    expect(event.details).toEqual({ decision: 'Allow' });
  });

  it('freezes the details it returns, so the canonical text kept for them stays true', () => {
    const event = validateEvent({ ...good, details: { b: [1, { c: 'x' }], a: true } });
    expect(() => {
      (event.details as { a: unknown }).a = false;
    }).toThrow(TypeError);
    expect(() => (event.details['b'] as unknown[]).push(2)).toThrow(TypeError);
    expect(canonicalDetails(event.details)).toBe('{"a":true,"b":[1,{"c":"x"}]}');
    // An equal but separate object is canonicalised afresh.
    expect(canonicalDetails({ a: true, b: [1, { c: 'y' }] })).toBe('{"a":true,"b":[1,{"c":"y"}]}');
  });

  it('shares details another event already validated, and still copies look-alikes', () => {
    const first = validateEvent({ ...good, details: { a: 1, b: [2] } });
    const second = validateEvent({ ...good, eventId: newEventId(), details: first.details });
    expect(second.details).toBe(first.details);
    expect(validateEventCanonical({ ...good, details: first.details }).detailsJcs).toBe('{"a":1,"b":[2]}');
    const lookAlike = { a: 1, b: [2] };
    expect(validateEvent({ ...good, details: lookAlike }).details).not.toBe(lookAlike);
  });

  it('makes a new event with a fresh id and the current time, validated', () => {
    const before = Date.now();
    const event = newEvent({ agentId: 'svc.policy', eventType: 'policy.decision', details: { decision: 'Allow' } });
    expect(isUuidV7(event.eventId)).toBe(true);
    expect(event.timestamp).toBeGreaterThanOrEqual(before);
    expect(() => newEvent({ agentId: 'svc.policy', eventType: 'policy.decision', details: { x: Number.NaN } })).toThrow('details.x: is NaN');
  });

  it('makes time-ordered UUIDv7 ids', () => {
    const id = newEventId(1732579200000);
    expect(isUuidV7(id)).toBe(true);
    expect(id.startsWith('01936')).toBe(true);
    // The first 48 bits are the millisecond timestamp, so later ids sort after earlier ones.
    expect(newEventId(1732579200001) > id).toBe(true);
    expect(newEventId(1732579200000)).not.toBe(id);
  });

  it.each([
    ['a UUIDv4 id', { ...good, eventId: '1b4e28ba-2fa1-41d2-883f-0016d3cca427' }, 'E_EVENT_ID'],
    ['a non-UUID id', { ...good, eventId: 'not-a-uuid' }, 'E_EVENT_ID'],
    ['a numeric id', { ...good, eventId: 7 }, 'E_EVENT_ID'],
    ['a wrong-variant UUIDv7', { ...good, eventId: '0192f5a0-1c00-7abc-0def-0123456789ab' }, 'E_EVENT_ID'],
    ['a fractional timestamp', { ...good, timestamp: 1.5 }, 'E_EVENT_TIMESTAMP'],
    ['a negative timestamp', { ...good, timestamp: -1 }, 'E_EVENT_TIMESTAMP'],
    ['a NaN timestamp', { ...good, timestamp: Number.NaN }, 'E_EVENT_TIMESTAMP'],
    ['a string timestamp', { ...good, timestamp: '2024-11-26' }, 'E_EVENT_TIMESTAMP'],
    ['an empty agent id', { ...good, agentId: '' }, 'E_EVENT_AGENT'],
    ['an agent id with a space', { ...good, agentId: 'agent.a b' }, 'E_EVENT_AGENT'],
    ['an agent id with a newline', { ...good, agentId: 'agent.a\nb' }, 'E_EVENT_AGENT'],
    ['an agent id of an unknown kind', { ...good, agentId: 'robot.x' }, 'E_EVENT_AGENT'],
    ['an overlong agent id', { ...good, agentId: `agent.${'a'.repeat(300)}` }, 'E_EVENT_AGENT'],
    ['an unknown type', { ...good, eventType: 'policy.decided' }, 'E_EVENT_TYPE'],
    ['a missing type', { ...good, eventType: undefined }, 'E_EVENT_TYPE'],
    ['array details', { ...good, details: [1] }, 'E_EVENT_DETAILS'],
    ['null details', { ...good, details: null }, 'E_EVENT_DETAILS'],
    ['NaN in details', { ...good, details: { score: Number.NaN } }, 'E_EVENT_DETAILS'],
    ['a Date in details', { ...good, details: { at: new Date() } }, 'E_EVENT_DETAILS'],
    ['oversized details', { ...good, details: { blob: 'x'.repeat(MAX_DETAILS_BYTES) } }, 'E_EVENT_DETAILS'],
    ['not an object', 'event', 'E_EVENT'],
  ])('rejects %s', (_name, input, code) => {
    expect(codeOf(input)).toBe(code);
  });

  it('says which event and which field are wrong, on one line', () => {
    expect(() => validateEvent({ ...good, details: { nested: { score: Number.NaN } } })).toThrow(
      'event 0192f5a0-1c00-7abc-8def-0123456789ab: details.nested.score: is NaN, which JSON (RFC 8785 §3.2.2.3) cannot represent',
    );
    expect(() => validateEvent({ ...good, eventType: 'policy.decided' })).toThrow(/^event 0192f5a0-1c00-7abc-8def-0123456789ab: eventType "policy.decided" is not one of the \d+ known event types/);
  });
});

describe('validateEventCanonical', () => {
  const base = { eventId: '0192f5a0-1c00-7abc-8def-0123456789ab', timestamp: 1732579200000, agentId: 'svc.policy', eventType: 'policy.decision' };

  it('returns the canonical details text with the event', () => {
    const { event, detailsJcs } = validateEventCanonical({ ...base, details: { b: 1, a: [true, 'x'] } });
    expect(detailsJcs).toBe('{"a":[true,"x"],"b":1}');
    expect(event).toEqual(validateEvent({ ...base, details: { b: 1, a: [true, 'x'] } }));
  });

  it('keeps the parsed details only when the text they came from is already canonical', () => {
    const canonicalText = '{"a":1,"b":{"c":-2.5}}';
    const parsed = JSON.parse(canonicalText) as Record<string, unknown>;
    expect(validateEventCanonical({ ...base, details: parsed }, canonicalText).event.details).toBe(parsed);
    // Not canonical (order, -0, exponent): a fresh copy through the canonical text.
    for (const text of ['{"b":{"c":-2.5},"a":1}', '{"a":-0}', '{"a":1e2}']) {
      const value = JSON.parse(text) as Record<string, unknown>;
      const { event, detailsJcs } = validateEventCanonical({ ...base, details: value }, text);
      expect(event.details).not.toBe(value);
      expect(event.details).toEqual(JSON.parse(detailsJcs));
      expect(Object.is((event.details as Record<string, unknown>)['a'], -0)).toBe(false);
    }
  });
});
