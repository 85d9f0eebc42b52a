/**
 * A JWT kept beside its nkey seed in the key directory: `<owner>.<kind>.v<version>.jwt`, mode
 * 0600. A JWT is not secret (the server holds the account's, and a user presents its own),
 * but it is what decides a user's permissions, so it is written atomically and read back
 * only after it verifies and names the stored key as its subject.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { FileKeyStore, NkeyKind } from '@bulwark/keystore';
import { NatsAuthError } from './errors.js';

export interface JwtRef {
  readonly owner: string;
  readonly kind: NkeyKind;
  readonly version: number;
}

export function jwtPath(store: FileKeyStore, ref: JwtRef): string {
  return join(store.dir, `${ref.owner}.${ref.kind}.v${ref.version}.jwt`);
}

export async function readJwt(store: FileKeyStore, ref: JwtRef): Promise<string | undefined> {
  const path = jwtPath(store, ref);
  try {
    const stats = await fs.stat(path);
    if ((stats.mode & 0o077) !== 0) {
      throw new NatsAuthError('E_NATS_JWT', `NATS JWT ${path}: permissions 0${(stats.mode & 0o777).toString(8)} are too open (chmod 600 ${path})`, { path });
    }
    return (await fs.readFile(path, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes (or replaces) the JWT: a temporary file with mode 0600, fsynced, renamed over the old one. */
export async function writeJwt(store: FileKeyStore, ref: JwtRef, jwt: string): Promise<string> {
  const path = jwtPath(store, ref);
  await writePrivateFile(path, `${jwt}\n`);
  return path;
}

export async function writePrivateFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
}
