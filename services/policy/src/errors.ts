import { BulwarkError, InputError } from '@bulwark/errors';

/** A policy service failure that is not the caller's input: `E_POLICY_AUDIT`, `E_POLICY_BOOT`, ... */
export class PolicyServiceError extends BulwarkError {}

/** A caller's bad admin input (unparsable text, unknown policy, version that does not exist). */
export class PolicyAdminInputError extends InputError {}
