import { InputError } from '@bulwark/errors';

/** A service process's exit codes. */
export const ServiceExit = { ok: 0, failure: 1, config: 2 } as const;

/** Bad configuration (an InputError: a bad value, a missing pin, a key that does not open as asked) is 2; anything else at run time is 1. */
export function exitCodeOf(error: unknown): number {
  return error instanceof InputError ? ServiceExit.config : ServiceExit.failure;
}

/** The one stderr line of a failed process: `bulwark-<name>: <message>` (the structured fields are in the error's context and the log). */
export function failureLine(name: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `bulwark-${name}: ${message.split('\n')[0]}\n`;
}
