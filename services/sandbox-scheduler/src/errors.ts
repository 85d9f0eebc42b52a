import { BulwarkError, InputError } from '@bulwark/errors';

/** A workload description or sandbox request that cannot be accepted: `E_SANDBOX_ASSESSMENT`, `E_SANDBOX_TIER`, `E_SANDBOX_SPEC`. */
export class SandboxInputError extends InputError {}

/** No driver on this host provides the tier asked for (never a silent downgrade): `E_SANDBOX_NO_DRIVER`. */
export class SandboxUnavailableError extends BulwarkError {}

/** The runtime failed to create, start, kill or delete a sandbox: `E_SANDBOX_RUNTIME`. */
export class SandboxRuntimeError extends BulwarkError {}

/** The ledger replay its callers are judged by did not catch up at start (`E_SANDBOX_BOOT`), or halted (`E_SANDBOX_HALTED`: every command refused). */
export class SandboxServiceError extends BulwarkError {}
