/**
 * Every Bulwark error carries a stable `code` (`E_REPLAY`, `E_POLICY_PARSE`, ...) and the
 * context a person needs: what failed, where, and why. The CLI prints `message` as one
 * line; logs carry `context` as structured fields.
 */
export class BulwarkError extends Error {
  readonly code: string;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.context = context;
  }
}

/** Bad input from a person or a file: the CLI exits 2 for these. */
export class InputError extends BulwarkError {}

export function isBulwarkError(value: unknown): value is BulwarkError {
  return value instanceof BulwarkError;
}
