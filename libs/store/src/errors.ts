import { BulwarkError } from '@bulwark/errors';

/**
 * A database failure the service cannot fix by itself: `E_DB_CONNECT` (the server or
 * the embedded files cannot be reached), `E_MIGRATION` (a schema migration failed).
 * Bad input (a malformed URL or schema name) is an `InputError` instead.
 */
export class StoreError extends BulwarkError {}
