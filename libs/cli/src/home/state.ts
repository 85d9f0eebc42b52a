import { closeSync, existsSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HomeError, type Home } from './home.js';

export const RUN_STATE_FORMAT = 'bulwark-up/v1';

export interface ServiceState {
  readonly name: string;
  readonly principal: string;
  pid: number | undefined;
  readonly metricsPort: number;
  restarts: number;
}

/** What `bulwark up` writes to `<home>/run/up.json` while it runs (mode 0600: it may hold a database URL). */
export interface RunState {
  readonly format: typeof RUN_STATE_FORMAT;
  readonly pid: number;
  readonly started: string;
  readonly nats: { readonly url: string; readonly managed: boolean; readonly pid?: number };
  readonly database: { readonly kind: 'pglite' | 'postgres'; readonly url: string };
  readonly admin: string;
  readonly services: ServiceState[];
}

export function readRunState(home: Home): RunState | undefined {
  if (!existsSync(home.stateFile)) return undefined;
  try {
    const state = JSON.parse(readFileSync(home.stateFile, 'utf8')) as RunState;
    if (state.format !== RUN_STATE_FORMAT) throw new Error(`format ${JSON.stringify(state.format)}`);
    return state;
  } catch (cause) {
    throw new HomeError('E_HOME_CORRUPT', `${home.stateFile} is corrupt (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)})`, { file: home.stateFile }, { cause });
  }
}

export function writeRunState(home: Home, state: RunState): void {
  const tmp = `${home.stateFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, home.stateFile);
}

export function removeRunState(home: Home): void {
  try {
    unlinkSync(home.stateFile);
  } catch {
    // Already gone.
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One `bulwark up` per home: `<home>/run/up.lock` holds its pid (taken over when that
 * process is gone). Returns the release function.
 */
export function lockHome(home: Home): () => void {
  const path = join(home.runDir, 'up.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // Already gone.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
        throw new HomeError('E_HOME_BUSY', `${home.dir} is already running (bulwark up, pid ${owner}); stop it first, or use another --dir`, { dir: home.dir, pid: owner });
      }
      unlinkSync(path);
    }
  }
  throw new HomeError('E_HOME_BUSY', `${home.dir}: cannot take ${path}`, { dir: home.dir });
}
