import { BulwarkError, InputError } from '@bulwark/errors';

/**
 * A key-lifecycle request the current state does not allow: `E_KEY_TRANSITION` (e.g. enabling
 * a revoked version), `E_KEY_UNKNOWN` (no such principal key or version), `E_KEY_DUPLICATE`.
 * An InputError: the caller asked for something that cannot be done; nothing changed.
 */
export class KeyLifecycleError extends InputError {}

/**
 * A join token that does not admit its bearer: `E_TOKEN_MALFORMED`, `E_TOKEN_FORGED`,
 * `E_TOKEN_EXPIRED`, `E_TOKEN_USED`, `E_TOKEN_PRINCIPAL`. Each of them is also reported as a
 * `security.violation` by the service (an enrollment attempt that fails is an attack until shown otherwise).
 */
export class JoinTokenError extends BulwarkError {}
