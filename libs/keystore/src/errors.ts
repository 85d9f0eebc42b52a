import { BulwarkError, InputError } from '@bulwark/errors';

/**
 * A key file or the key directory is missing, malformed, unreadable, or does not open:
 * `E_KEY_UNWRAP` (wrong KEK or a tampered/moved file), `E_KEY_FILE`, `E_KEY_NOT_FOUND`,
 * `E_KEY_EXISTS`, `E_KEY_DIR`.
 */
export class KeyStoreError extends BulwarkError {}

/**
 * The operator's input is wrong: no key-encryption key, a KEK that is not 32 bytes of
 * base64, a KEK file others can read, a bad principal id. The CLI exits 2 for these.
 */
export class KeyStoreInputError extends InputError {}
