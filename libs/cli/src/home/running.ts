import { BulwarkError } from '@bulwark/errors';
import { requireHome, resolveHome, type Home } from './home.js';
import { homeEnvironment } from './environment.js';
import { isAlive, readRunState, type RunState } from './state.js';
import type { CommandIO } from '../io.js';

/** A home whose `bulwark up` is running, and the environment its commands use. */
export interface RunningHome {
  readonly home: Home;
  readonly state: RunState;
  readonly env: NodeJS.ProcessEnv;
}

/** The running system of `--dir` / `$SYMBIONT_HOME` / `./.bulwark`, or a one-line error saying how to start it. */
export function runningHome(io: CommandIO, dir: string | undefined): RunningHome {
  const home = resolveHome(io.cwd, io.env, dir);
  requireHome(home);
  const state = readRunState(home);
  if (state === undefined) {
    throw new BulwarkError('E_NOT_RUNNING', `Bulwark is not running from ${home.dir} (no ${home.stateFile}): start it with \`npm start\` or \`bulwark up --dir ${home.dir}\``, { dir: home.dir });
  }
  if (!isAlive(state.pid)) {
    throw new BulwarkError('E_NOT_RUNNING', `Bulwark is not running from ${home.dir}: bulwark up (pid ${state.pid}) is gone; start it again with \`bulwark up --dir ${home.dir}\``, { dir: home.dir });
  }
  return { home, state, env: homeEnvironment(home, io.env) };
}
