import { BulwarkError, InputError } from '@bulwark/errors';

/** A request the service refuses (bad body, not an admin, a pin conflict): an error reply with `code`. */
export class ToolsInputError extends InputError {}

/** The service could not do what was asked (the ledger did not commit in time, boot failed). */
export class ToolsServiceError extends BulwarkError {}
