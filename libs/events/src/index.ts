export { EVENT_TYPES, eventCategory, eventSubject, eventTypeFromSubject, isControlEventType, isEventType, type EventCategory, type EventType } from './event-types.js';
export { MAX_JSON_DEPTH, assertJsonValue, canonicalJson, parseJson, type JsonObject, type JsonPrimitive, type JsonValue } from './jcs.js';
export {
  GENESIS_PREVIOUS_HASH,
  HASH_LENGTH,
  MAX_AGENT_ID_LENGTH,
  MAX_DETAILS_BYTES,
  MAX_TIMESTAMP_MS,
  SIGNATURE_LENGTH,
  canonicalDetails,
  isPrincipalId,
  isUuidV7,
  newEvent,
  newEventId,
  validateEvent,
  validateEventCanonical,
  type AuditEvent,
  type CanonicalEvent,
  type ChainFields,
  type LedgerEvent,
  type NewEventInput,
} from './event.js';
export { PRODUCER_RULES, checkProducer, type ProducerRule } from './authority.js';
export { EVENT_HASH_DOMAIN, computeEventHash, eventHashInput, hashedFieldsOf, type HashedFields } from './hash.js';
export { checkSealedEvent, sealEvent, type SealProblem } from './seal.js';
export {
  decodeEvent,
  decodeEventBatch,
  decodeLedgerBatch,
  encodeEvent,
  encodeEventBatch,
  fromEventMessage,
  isLedgerEvent,
  toEventMessage,
  type LedgerBatch,
} from './proto.js';
export { writeAuditEvent, writeAuditEventBatch, type BatchWireOptions, type EventWireFields } from './wire.js';
