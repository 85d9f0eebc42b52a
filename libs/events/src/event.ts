/**
 * The audit event (seed S4.1, DESIGN §4) and the checks a producer's event must pass
 * before anyone hashes or stores it. Field names are the camelCase of the design's
 * snake_case names (event_id → eventId).
 */
import { v7 as uuidv7 } from 'uuid';
import { RandomPool } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { EVENT_TYPES, isEventType, type EventType } from './event-types.js';
import { canonicalJson, type JsonObject } from './jcs.js';

/** An event as a producer publishes it. */
export interface AuditEvent {
  /** UUIDv7 (RFC 9562 §5.7), lowercase canonical text. */
  readonly eventId: string;
  /** When it happened, Unix epoch milliseconds (an integer). */
  readonly timestamp: number;
  /** The principal it is about: `agent.<uuid>`, `svc.<name>` or `analyst.<name>` (DESIGN §3). */
  readonly agentId: string;
  readonly eventType: EventType;
  /** Plain JSON; hashed in its RFC 8785 canonical form. */
  readonly details: JsonObject;
}

/** The fields the ledger adds when it appends an event (DESIGN §4). */
export interface ChainFields {
  /**
   * The principal whose envelope-authenticated frame delivered the event to the ledger
   * (DESIGN §3a): set by the ledger from the sealed receiver's sender, never by the sender
   * itself, and hashed. What `checkProducer` (authority.ts) judges the event type against.
   */
  readonly producer: string;
  /** Position in the log, from 0; also the event's leaf index in the Merkle tree. */
  readonly seq: number;
  /** The event_hash of seq − 1; 32 zero bytes for seq 0. */
  readonly previousHash: Uint8Array;
  readonly eventHash: Uint8Array;
  /** Ed25519 by the ledger's signing key over eventHash. */
  readonly signature: Uint8Array;
}

/** An event as the ledger stores and serves it. */
export type LedgerEvent = AuditEvent & ChainFields;

export const HASH_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const GENESIS_PREVIOUS_HASH: Uint8Array = new Uint8Array(HASH_LENGTH);

/** Larger details are refused: the ledger is an audit trail, not a blob store. */
export const MAX_DETAILS_BYTES = 64 * 1024;
export const MAX_AGENT_ID_LENGTH = 256;
/** The largest timestamp an ECMAScript Date can hold (ECMA-262 §21.4.1.1). */
export const MAX_TIMESTAMP_MS = 8.64e15;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const AGENT_ID = /^(?:agent|svc|analyst)\.[A-Za-z0-9][A-Za-z0-9._:@/+-]*$/;

/** A fresh UUIDv7 for a new event (time-ordered, so ids sort roughly by creation). */
export function newEventId(nowMs?: number): string {
  return nowMs === undefined ? uuidv7() : uuidv7({ msecs: nowMs, random: idRandomness.take(16) });
}

// uuid draws 16 bytes through crypto.getRandomValues per id (~10 µs each, measured in the policy service's decision log).
const idRandomness = new RandomPool();

/** What a producer supplies; id and timestamp default to a fresh UUIDv7 and now. */
export interface NewEventInput {
  readonly agentId: string;
  readonly eventType: EventType;
  readonly details: JsonObject;
  readonly eventId?: string;
  readonly timestamp?: number;
}

/** A new, validated event (throws InputError like validateEvent). */
export function newEvent(input: NewEventInput): AuditEvent {
  const timestamp = input.timestamp ?? Date.now();
  return validateEvent({ ...input, timestamp, eventId: input.eventId ?? newEventId(timestamp) });
}

function eventError(code: string, eventId: unknown, why: string, context: Record<string, unknown> = {}): InputError {
  const which = typeof eventId === 'string' && eventId.length <= 64 ? `event ${eventId}` : 'event';
  return new InputError(code, `${which}: ${why}`, { eventId, ...context });
}

/** A principal id (DESIGN §3): `agent.<id>`, `svc.<name>` or `analyst.<name>`, at most MAX_AGENT_ID_LENGTH characters. */
export function isPrincipalId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_AGENT_ID_LENGTH && AGENT_ID.test(value);
}

export function isUuidV7(value: unknown): value is string {
  return typeof value === 'string' && UUID_V7.test(value);
}

/**
 * Checks a producer's event and returns it in normal form (lowercase id, details copied
 * through their canonical form so later mutation of the input cannot change what was
 * checked); the details it returns are frozen. Throws InputError with code E_EVENT_ID, E_EVENT_TIMESTAMP, E_EVENT_AGENT,
 * E_EVENT_TYPE or E_EVENT_DETAILS naming the event and what is wrong.
 */
export function validateEvent(input: unknown): AuditEvent {
  const { event, detailsJcs } = validateEventCanonical(input);
  // Producers encode the events they make: freeze the details and keep their canonical text,
  // so encoding does not canonicalise them again. (The ledger's ingest, which gets the text
  // back from validateEventCanonical, skips this: a weak-map entry per event costs its GC.)
  freezeDeep(event.details);
  canonicalOf.set(event.details, detailsJcs);
  return event;
}

/** An event validateEvent accepted, and the RFC 8785 text of its details (what is hashed and stored). */
export interface CanonicalEvent {
  readonly event: AuditEvent;
  readonly detailsJcs: string;
}

/**
 * validateEvent, also returning the canonical details text (canonicalised once, not again by
 * the caller). `detailsText` is the JSON text `input.details` was just parsed from (a wire
 * message's details_json, parsed by the caller and referenced nowhere else): when it is
 * already canonical, which is what producers send, the parsed value is exactly what
 * parsing the canonical text would give, so it is kept instead of being parsed again.
 */
export function validateEventCanonical(input: unknown, detailsText?: string): CanonicalEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InputError('E_EVENT', `event: expected an object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
  }
  const raw = input as Record<string, unknown>;
  const id = raw['eventId'];

  if (typeof id !== 'string') throw eventError('E_EVENT_ID', id, `eventId must be a UUIDv7 string, got ${typeof id}`);
  const eventId = id.toLowerCase();
  if (!UUID_V7.test(eventId)) {
    throw eventError('E_EVENT_ID', id, 'eventId is not a UUIDv7 (xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx, RFC 9562 §5.7)');
  }

  const timestamp = raw['timestamp'];
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || timestamp < 0 || timestamp > MAX_TIMESTAMP_MS) {
    throw eventError('E_EVENT_TIMESTAMP', eventId, `timestamp must be integer epoch milliseconds in [0, ${MAX_TIMESTAMP_MS}], got ${String(timestamp)}`);
  }

  const agentId = raw['agentId'];
  if (!isPrincipalId(agentId)) {
    const shown = typeof agentId === 'string' ? JSON.stringify(agentId.slice(0, 80)) : typeof agentId;
    throw eventError('E_EVENT_AGENT', eventId, `agentId ${shown} is not a principal id (agent.<id>, svc.<name> or analyst.<name>, at most ${MAX_AGENT_ID_LENGTH} characters)`);
  }

  const eventType = raw['eventType'];
  if (!isEventType(eventType)) {
    const shown = typeof eventType === 'string' ? JSON.stringify(eventType.slice(0, 80)) : typeof eventType;
    throw eventError('E_EVENT_TYPE', eventId, `eventType ${shown} is not one of the ${EVENT_TYPES.length} known event types (see EVENT_TYPES)`);
  }

  const details = raw['details'];
  if (typeof details !== 'object' || details === null || Array.isArray(details)) {
    throw eventError('E_EVENT_DETAILS', eventId, `details must be a JSON object, got ${details === null ? 'null' : Array.isArray(details) ? 'an array' : typeof details}`);
  }
  // Details another event already carries were validated, frozen and canonicalised then:
  // they are shared as they are (nothing can have changed them).
  const validated = canonicalOf.get(details);
  const canonical = validated ?? canonicalDetails(details, eventId);
  const copy = validated !== undefined || canonical === detailsText ? (details as JsonObject) : (JSON.parse(canonical) as JsonObject);
  return { event: { eventId, timestamp, agentId, eventType, details: copy }, detailsJcs: canonical };
}

/**
 * The canonical text of every details object validateEvent returned. Those objects are
 * frozen, so the text stays theirs, and encoding or hashing a validated event does not
 * canonicalise its details a second time.
 */
const canonicalOf = new WeakMap<object, string>();

function freezeDeep(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const child of Object.values(value)) freezeDeep(child);
}

/** The RFC 8785 text of an event's details, size-checked; throws InputError E_EVENT_DETAILS. */
export function canonicalDetails(details: unknown, eventId?: string): string {
  const known = typeof details === 'object' && details !== null ? canonicalOf.get(details) : undefined;
  if (known !== undefined) return known;
  let canonical: string;
  try {
    canonical = canonicalJson(details, 'details');
  } catch (cause) {
    if (cause instanceof InputError) throw eventError('E_EVENT_DETAILS', eventId, cause.message, cause.context as Record<string, unknown>);
    throw cause;
  }
  const size = Buffer.byteLength(canonical, 'utf8');
  if (size > MAX_DETAILS_BYTES) {
    throw eventError('E_EVENT_DETAILS', eventId, `details are ${size} bytes in canonical form, more than the ${MAX_DETAILS_BYTES} allowed`, { size });
  }
  return canonical;
}
