// Custody attacks (issue 12 "Custody"): after a home's init and the copies `bulwark up` makes,
// an attacker holding the home KEK (every service and every operator command has it) and
// reading every file of the home outside the key manager's directory must not get the root.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServicePrincipals } from '@bulwark/bus';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { decodeWrappedKeyFile, loadRootKey, SoftwareKek, wrapAd, type KeyWrapper } from '@bulwark/keystore';
import { init } from '../commands/init.js';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';
import { SERVICES } from '../run/services.js';
import { serviceKeyEnvironment } from '../run/service-keys.js';
import { ADMIN_PRINCIPAL } from './admin.js';
import { ensureKeyManagerKek, exportAdminDirectory, keyManagerEnvironment, migrateLegacyKeys } from './custody.js';
import { homeEnvironment } from './environment.js';
import { ensureHome, homeAt, type Home } from './home.js';
import { openKeyStore } from './session.js';

const provider = createNodeCryptoProvider();
// Nothing listens there: init writes its files and reports the publish as failed.
const NO_NATS = 'nats://127.0.0.1:1';

let home: Home;
let io: CommandIO;
let said: string;

beforeEach(() => {
  home = homeAt(mkdtempSync(join(tmpdir(), 'bulwark-custody-')));
  ensureHome(home);
  writeFileSync(home.kekFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  said = '';
  io = { stdout: () => undefined, stderr: (s) => void (said += s), env: { SYMBIONT_LEDGER_ORIGIN: 'custody.test' }, cwd: home.dir };
});

afterEach(() => rmSync(home.dir, { recursive: true, force: true }));

const kekOf = (file: string, source: string): KeyWrapper => new SoftwareKek(provider, new Uint8Array(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')), source);

async function initInto(dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  await init({ ...io, env }, { dir, nats: NO_NATS, json: true, admin: ADMIN_PRINCIPAL, natsConfigDir: home.natsDir, natsStoreDir: home.natsDir }, () => undefined);
}

/** A store of the previous layout, `<home>/keys` under the home KEK (init now refuses to write one inside a home). */
async function legacyStore(): Promise<void> {
  const elsewhere = mkdtempSync(join(tmpdir(), 'bulwark-custody-old-'));
  await initInto(join(elsewhere, 'keys'), homeEnvironment(home, io.env));
  renameSync(join(elsewhere, 'keys'), home.legacyKeysDir);
  rmSync(elsewhere, { recursive: true, force: true });
}

/** What `bulwark up` does to the keys before it starts the services. */
async function custodyAsUpDoes(): Promise<Map<string, NodeJS.ProcessEnv>> {
  ensureKeyManagerKek(io, home);
  await migrateLegacyKeys(io, home, homeEnvironment(home, io.env), keyManagerEnvironment(home, io.env));
  await initInto(home.keyManagerKeysDir, keyManagerEnvironment(home, io.env));
  const { store } = await openKeyStore(keyManagerEnvironment(home, io.env), io.cwd);
  await exportAdminDirectory(store, home, homeEnvironment(home, io.env), io.cwd);
  const envs = new Map<string, NodeJS.ProcessEnv>();
  for (const spec of SERVICES) envs.set(spec.principal, await serviceKeyEnvironment(store, home, spec, homeEnvironment(home, io.env), io.cwd));
  return envs;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Every secret any file outside the key manager's directory yields under any of `keks` (whatever its name says it is). */
async function secretsOutsideKeyManager(keks: readonly KeyWrapper[]): Promise<Uint8Array[]> {
  const found: Uint8Array[] = [];
  for (const path of filesUnder(home.dir).filter((p) => !p.startsWith(join(home.dir, 'key-manager')))) {
    let file;
    try {
      file = decodeWrappedKeyFile(readFileSync(path, 'utf8'), path);
    } catch {
      continue;
    }
    for (const kek of keks) {
      try {
        found.push(await kek.unwrap(file.nonce, file.ciphertext, wrapAd(file, file.publicKey)));
      } catch {
        // Not wrapped under this KEK.
      }
    }
  }
  return found;
}

describe('custody of a home', () => {
  it('keeps the root secret out of every file outside the key manager directory, under the home KEK and the key manager KEK', async () => {
    await custodyAsUpDoes();
    const { store } = await openKeyStore(keyManagerEnvironment(home, io.env), io.cwd);
    const root = await loadRootKey(store);
    const keks = [kekOf(home.kekFile, 'home'), kekOf(home.keyManagerKekFile, 'key manager')];
    const secrets = await secretsOutsideKeyManager(keks);
    // The copies exist and open (the attack is not vacuous): admin, operator user, six services.
    expect(secrets.length).toBeGreaterThanOrEqual(3 + 1 + 3 * 5);
    for (const s of secrets) expect(Buffer.from(s).equals(Buffer.from(root.keyPair.secretKey))).toBe(false);
    // Nor in the clear, in any encoding, anywhere outside.
    const encodings = [Buffer.from(root.keyPair.secretKey).toString('base64'), Buffer.from(root.keyPair.secretKey).toString('hex'), Buffer.from(root.keyPair.secretKey.subarray(0, 32)).toString('base64')];
    for (const path of filesUnder(home.dir).filter((p) => !p.startsWith(join(home.dir, 'key-manager')))) {
      const text = readFileSync(path, 'latin1');
      for (const e of encodings) expect(text.includes(e), path).toBe(false);
    }
    root.keyPair.secretKey.fill(0);
  });

  it("wraps the key manager's store under its own KEK: the home KEK does not open the root", async () => {
    await custodyAsUpDoes();
    await expect(openKeyStore({ ...homeEnvironment(home, io.env), SYMBIONT_KEY_DIR: home.keyManagerKeysDir }, io.cwd).then(({ store }) => loadRootKey(store))).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
  });

  it("gives the administrator's directory and each service's directory only their own keys", async () => {
    const envs = await custodyAsUpDoes();
    const { store: admin } = await openKeyStore(homeEnvironment(home, io.env), io.cwd);
    expect(admin.dir).toBe(home.adminDir);
    expect((await admin.list()).map((k) => `${k.principal}.${k.kind}`)).toEqual(['analyst.admin.ed25519', 'analyst.admin.nats-user', 'analyst.admin.x25519', 'root.nats-user']);
    expect(readdirSync(home.adminDir).sort()).toEqual(expect.arrayContaining(['root.pub', 'audit-ledger.vkey', 'entries']));
    for (const spec of SERVICES) {
      const env = envs.get(spec.principal)!;
      const { store } = await openKeyStore(env, io.cwd);
      if (spec.principal === ServicePrincipals.keys) {
        expect(store.dir).toBe(home.keyManagerKeysDir);
        expect(env['SYMBIONT_KEK_FILE']).toBe(home.keyManagerKekFile);
        continue;
      }
      expect(env['SYMBIONT_KEK_FILE']).toBe(home.kekFile);
      expect(new Set((await store.list()).map((k) => k.principal))).toEqual(new Set([spec.principal]));
      expect(readdirSync(store.dir).filter((n) => !n.startsWith(spec.principal)).sort()).toEqual(['root.pub']);
    }
  });

  it("keeps what a service rotated to in its own directory across starts (its later versions, their JWTs, its pending slot), never into the key manager's store", async () => {
    const first = await custodyAsUpDoes();
    const dir = first.get(ServicePrincipals.audit)!['SYMBIONT_KEY_DIR']!;
    const { store } = await openKeyStore({ ...homeEnvironment(home, io.env), SYMBIONT_KEY_DIR: dir }, io.cwd);
    // What the ledger's own rotation leaves there (service-host rotation-keep.ts, the pending slot).
    const v2 = provider.ed25519.generateKeyPair();
    await store.put({ principal: ServicePrincipals.audit, kind: 'ed25519', version: 2 }, v2.secretKey);
    await store.put({ principal: ServicePrincipals.audit, kind: 'x25519', version: 2 }, provider.x25519.generateKeyPair().secretKey);
    writeFileSync(join(dir, `${ServicePrincipals.audit}.nats-user.v2.jwt`), 'jwt-of-v2\n', { mode: 0o600 });
    const staged = provider.ed25519.generateKeyPair();
    await (await store.pendingStore()).put({ principal: ServicePrincipals.audit, kind: 'ed25519', version: 3 }, staged.secretKey);
    await custodyAsUpDoes();
    const { store: again } = await openKeyStore({ ...homeEnvironment(home, io.env), SYMBIONT_KEY_DIR: dir }, io.cwd);
    expect((await again.get({ principal: ServicePrincipals.audit, kind: 'ed25519', version: 2 })).info.publicKey).toEqual(v2.publicKey);
    expect((await again.list(ServicePrincipals.audit)).map((k) => `${k.kind}.v${k.version}`).sort()).toEqual(['ed25519.v1', 'ed25519.v2', 'nats-user.v1', 'x25519.v1', 'x25519.v2']);
    expect(readFileSync(join(dir, `${ServicePrincipals.audit}.nats-user.v2.jwt`), 'utf8')).toBe('jwt-of-v2\n');
    expect((await (await again.pendingStore()).get({ principal: ServicePrincipals.audit, kind: 'ed25519', version: 3 })).info.publicKey).toEqual(staged.publicKey);
    // Kept in the service's directory only: the key manager's store never gets the holder's private keys.
    const { store: km } = await openKeyStore(keyManagerEnvironment(home, io.env), io.cwd);
    expect((await km.list(ServicePrincipals.audit)).some((k) => k.version > 1)).toBe(false);
  });

  it("stops at a wrong home KEK: the administrator's existing keys must open under it", async () => {
    await custodyAsUpDoes();
    const { store } = await openKeyStore(keyManagerEnvironment(home, io.env), io.cwd);
    const wrong = { ...io.env, SYMBIONT_KEK: randomBytes(32).toString('base64') };
    await expect(exportAdminDirectory(store, home, homeEnvironment(home, wrong), io.cwd)).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
  });

  it('moves a home of the previous layout into the key manager store and leaves no root under the home KEK', async () => {
    // The previous layout: one store <home>/keys under the home KEK, the root in it.
    await legacyStore();
    const before = await openKeyStore({ ...homeEnvironment(home, io.env), SYMBIONT_KEY_DIR: home.legacyKeysDir }, io.cwd).then(({ store }) => loadRootKey(store));
    await custodyAsUpDoes();
    expect(existsSync(home.legacyKeysDir)).toBe(false);
    expect(said).toContain(`moved the keys of ${home.legacyKeysDir}`);
    const after = await openKeyStore(keyManagerEnvironment(home, io.env), io.cwd).then(({ store }) => loadRootKey(store));
    expect(Buffer.from(after.keyPair.publicKey).equals(Buffer.from(before.keyPair.publicKey))).toBe(true);
    const secrets = await secretsOutsideKeyManager([kekOf(home.kekFile, 'home'), kekOf(home.keyManagerKekFile, 'key manager')]);
    for (const s of secrets) expect(Buffer.from(s).equals(Buffer.from(before.keyPair.secretKey))).toBe(false);
  });

  it('refuses to init a store inside a home other than the key manager one (a root under the home KEK)', async () => {
    for (const dir of [home.legacyKeysDir, home.adminDir]) {
      await expect(initInto(dir, homeEnvironment(home, io.env))).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringContaining(`whose keys bulwark up makes in ${home.keyManagerKeysDir}`) });
      expect(existsSync(join(dir, 'root.ed25519.v1.json'))).toBe(false);
    }
  });

  it("backs up the key manager's store from a home (bulwark keys backup, offline: --no-anchor); the administrator's directory has no root to sign it with", async () => {
    await custodyAsUpDoes();
    const holders = ['analyst.a', 'analyst.b'].flatMap((id) => ['--holder', `${id}=${Buffer.from(provider.x25519.generateKeyPair().publicKey).toString('base64')}`]);
    let out = '';
    let err = '';
    const cli = (argv: string[], env: NodeJS.ProcessEnv) => run(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env, cwd: home.dir });
    expect(await cli(['keys', 'backup', '--holders', '2-of-2', ...holders, '--no-anchor', '--out', join(home.dir, 'km.backup'), '--json'], { SYMBIONT_HOME: home.dir }), err).toBe(0);
    const names = readdirSync(home.keyManagerKeysDir).filter((n) => statSync(join(home.keyManagerKeysDir, n)).isFile());
    expect((JSON.parse(out) as { files: number }).files).toBe(names.length);
    // The home named with --dir instead: the same store (the key manager's, not the administrator's).
    out = '';
    expect(await cli(['keys', 'backup', '--dir', home.dir, '--holders', '2-of-2', ...holders, '--no-anchor', '--out', join(home.dir, 'km-dir.backup'), '--json'], {}), err).toBe(0);
    expect((JSON.parse(out) as { files: number }).files).toBe(names.length);
    // Pointed at the administrator's directory, the same backup finds no root: it is not there.
    err = '';
    expect(await cli(['keys', 'backup', '--holders', '2-of-2', ...holders, '--no-anchor', '--out', join(home.dir, 'admin.backup')], { SYMBIONT_HOME: home.dir, SYMBIONT_KEY_DIR: home.adminDir, SYMBIONT_KEK_FILE: home.kekFile })).not.toBe(0);
    expect(err).toMatch(/no root key in file:/);
  });

  it('refuses a half-done migration (both layouts present) and changes nothing', async () => {
    await legacyStore();
    await custodyAsUpDoes();
    await legacyStore();
    const legacy = readdirSync(home.legacyKeysDir).sort();
    await expect(custodyAsUpDoes()).rejects.toMatchObject({ code: 'E_HOME_LAYOUT', message: expect.stringContaining(`remove ${home.keyManagerKeysDir} and run bulwark up again`) });
    expect(readdirSync(home.legacyKeysDir).sort()).toEqual(legacy);
  });
});
