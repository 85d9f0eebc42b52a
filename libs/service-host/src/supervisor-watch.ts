import type { Readable } from 'node:stream';
import { InputError } from '@bulwark/errors';

/**
 * How a supervisor (`bulwark up`) tells a service process it is supervised: `BULWARK_SUPERVISOR=stdin`
 * means its stdin is a pipe whose other end only the supervisor holds. When the supervisor dies,
 * however it dies (SIGKILL included), the kernel closes that end and the service reads EOF:
 * it then stops itself as on SIGTERM, so no service outlives the system it belonged to.
 */
export const SUPERVISOR_ENV = 'BULWARK_SUPERVISOR';
export const SUPERVISOR_STDIN = 'stdin';

export interface SupervisorWatch {
  /** Resolves when the supervisor is gone (never, when the process is not supervised). */
  readonly gone: Promise<void>;
  /** Stops watching (lets the process exit). */
  dispose(): void;
}

/** Watches the supervisor's pipe when `env` says there is one; an unknown `BULWARK_SUPERVISOR` value is refused (fail secure: a mistyped mode would silently leave orphans). */
export function watchSupervisor(env: NodeJS.ProcessEnv = process.env, input: Readable = process.stdin): SupervisorWatch | undefined {
  const mode = env[SUPERVISOR_ENV];
  if (mode === undefined || mode === '') return undefined;
  if (mode !== SUPERVISOR_STDIN) throw new SupervisorModeError(mode);
  let done: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => (done = resolve));
  const onGone = (): void => done();
  // Nothing is expected on the pipe: whatever comes is read and dropped, so the pipe never fills.
  const onData = (): void => undefined;
  input.on('data', onData);
  input.once('end', onGone);
  input.once('close', onGone);
  input.once('error', onGone);
  input.resume();
  return {
    gone,
    dispose() {
      input.off('data', onData);
      input.off('end', onGone);
      input.off('close', onGone);
      input.off('error', onGone);
      input.pause();
      // process.stdin keeps the event loop alive while it is being read.
      if ('destroy' in input && typeof input.destroy === 'function') input.destroy();
    },
  };
}


export class SupervisorModeError extends InputError {
  constructor(mode: string) {
    super('E_CONFIG', `${SUPERVISOR_ENV}=${JSON.stringify(mode.slice(0, 40))}: the only supervisor mode is "${SUPERVISOR_STDIN}" (stdin is the supervisor's pipe)`, { name: SUPERVISOR_ENV });
  }
}
