/**
 * A key directory of one principal's own files (DESIGN §3a, §8): its identity keys, its NATS
 * user seed and JWT, and the root pin, still wrapped under the same KEK. A service run from it
 * cannot open the root key or the account's signing key, so a compromised service process
 * cannot sign directory entries or mint itself a more powerful NATS user.
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { requirePrincipalId, ROOT_PIN_FILE, type FileKeyStore } from '@bulwark/keystore';
import { NatsAuthError } from './errors.js';
import { writePrivateFile } from './jwt-file.js';

const OWN_FILE = /^(.+)\.(ed25519|x25519|nats-user)\.v[1-9][0-9]{0,9}\.(json|jwt)$/;

/**
 * Copies `id`'s files from `store` into `dir` (created 0700; files 0600; the pin 0644) and
 * returns the names copied. Refuses a `dir` that is the store's own directory or already holds
 * another principal's or the root's keys (`E_NATS_EXPORT`): the point is that it holds nothing else.
 */
export async function exportPrincipalKeys(store: FileKeyStore, id: string, dir: string): Promise<readonly string[]> {
  requirePrincipalId(id, 'export');
  const target = resolve(dir);
  if (target === store.dir) throw new NatsAuthError('E_NATS_EXPORT', `export of ${id}: ${target} is the key directory itself`, { dir: target });
  await fs.mkdir(target, { recursive: true, mode: 0o700 });
  await fs.chmod(target, 0o700);
  for (const name of await fs.readdir(target)) {
    const owner = OWN_FILE.exec(name)?.[1] ?? (name.endsWith('.json') || name.endsWith('.jwt') ? '?' : undefined);
    if (owner !== undefined && owner !== id) throw new NatsAuthError('E_NATS_EXPORT', `export of ${id}: ${target} already holds ${name}, which is not ${id}'s`, { dir: target, file: name });
  }
  const names = (await fs.readdir(store.dir)).filter((name) => OWN_FILE.exec(name)?.[1] === id).sort();
  if (!names.some((n) => n.endsWith('.json'))) throw new NatsAuthError('E_NATS_EXPORT', `export of ${id}: no keys of ${id} in ${store.dir}`, { principal: id });
  for (const name of names) await writePrivateFile(join(target, name), await fs.readFile(join(store.dir, name), 'utf8'));
  const pin = await fs.readFile(join(store.dir, ROOT_PIN_FILE), 'utf8').catch(() => undefined);
  if (pin !== undefined) {
    await writePrivateFile(join(target, ROOT_PIN_FILE), pin);
    await fs.chmod(join(target, ROOT_PIN_FILE), 0o644);
  }
  return pin === undefined ? names : [...names, ROOT_PIN_FILE];
}
