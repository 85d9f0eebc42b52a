import { openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { StoreError } from './errors.js';

/**
 * PGlite does not notice a second instance opening the same data directory, and two
 * writers corrupt it. A lock file beside the directory holds the owner's pid; a lock
 * whose process is gone (a crash) is taken over.
 */
export function lockDataDir(dataDir: string): () => void {
  const lockPath = `${dataDir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => unlinkQuietly(lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StoreError('E_DB_CONNECT', `cannot open PGlite data directory ${dataDir}: cannot create lock ${lockPath}: ${(error as Error).message}`, {
          dataDir,
        }, { cause: error });
      }
      const owner = readOwner(lockPath);
      if (owner !== undefined && isAlive(owner)) {
        const who = owner === process.pid ? 'this process' : `process ${owner}`;
        throw new StoreError('E_DB_CONNECT', `cannot open PGlite data directory ${dataDir}: it is already open in ${who} (lock ${lockPath})`, {
          dataDir,
          ownerPid: owner,
        });
      }
      unlinkQuietly(lockPath);
    }
  }
  throw new StoreError('E_DB_CONNECT', `cannot open PGlite data directory ${dataDir}: another process keeps taking the lock ${lockPath}`, { dataDir });
}

function readOwner(lockPath: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockPath, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: nothing to release.
  }
}
