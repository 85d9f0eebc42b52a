import { BulwarkError } from '@bulwark/errors';

/**
 * NATS authentication material is missing, malformed or does not match: `E_NATS_PRINCIPAL`
 * (an id the permission table does not know), `E_NATS_JWT` (a stored JWT that does not
 * verify or is not the key's), `E_NATS_CREDS` (no or unusable credentials),
 * `E_NATS_CONFIG` (a server configuration that cannot be written).
 */
export class NatsAuthError extends BulwarkError {}
