import { InputError } from '@bulwark/errors';

/**
 * A key-lifecycle request the current state does not allow: `E_KEY_TRANSITION` (e.g. enabling
 * a revoked version), `E_KEY_UNKNOWN` (no such principal key or version), `E_KEY_DUPLICATE`.
 * An InputError: the caller asked for something that cannot be done; nothing changed.
 */
export class KeyLifecycleError extends InputError {}
