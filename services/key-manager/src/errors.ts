import { BulwarkError } from '@bulwark/errors';

/**
 * A join token that does not admit its bearer: `E_TOKEN_MALFORMED`, `E_TOKEN_FORGED`,
 * `E_TOKEN_EXPIRED`, `E_TOKEN_USED`, `E_TOKEN_PRINCIPAL`. Each of them is also reported as a
 * `security.violation` by the service (an enrollment attempt that fails is an attack until shown otherwise).
 */
export class JoinTokenError extends BulwarkError {}
