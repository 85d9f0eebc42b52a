export { startLedgerReader, type LedgerReader, type LedgerReaderMetrics, type LedgerReaderOptions } from './reader.js';
export { AppliedEvents, type AppliedWait } from './applied-events.js';
export { LedgerReaderTimeoutError, LedgerReaderUsageError, ReaderHaltedError, type ReaderHaltCode } from './errors.js';
export { START_POSITION, type ReaderMode, type ReaderPosition } from './internal/chain.js';
export type { GapRange, GapSource } from './internal/core.js';
export { CONTROL_EVENT_TYPES, ledgerEventOfJson, type AuditQuery } from './internal/query-source.js';
export { ledgerQuery, startQueryReader, type QueryReader, type QueryReaderOptions } from './query-reader.js';
