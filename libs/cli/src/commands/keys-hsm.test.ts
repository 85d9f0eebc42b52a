// The key manager's custody on an HSM from the command line (issue 12), on SoftHSM2 tokens made
// by this file in its own temporary directory (its own SOFTHSM2_CONF): `bulwark keys hsm
// provision` makes the root in the token, where an attacker with the PIN can neither read it nor
// wrap it out, and never replaces it; `bulwark init --key-store hsm` pins that root and makes no
// root file; `bulwark keys backup` signs through the token and `keys restore` brings the files back
// only onto the token whose root is the pinned one, writing nothing on a refusal. `bulwark
// principal add` offline on the token's store signs the new entry in the token (C_Sign), and a
// wrong PIN, a missing token, another token's root or a directory that is not the token's store
// is refused with nothing written.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeCryptoProvider, toBase64 } from '@bulwark/crypto';
import { decodeSignedDirectoryEntry, encodeDirectoryEntry } from '@bulwark/envelope';
import { FileKeyStore, loadKek, openHsmKeyStore, readRootPinFile } from '@bulwark/keystore';
import { attackTokenKey, createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHome, homeAt } from '../home/home.js';
import type { CommandIO } from '../io.js';
import { run } from '../main.js';

const provider = createNodeCryptoProvider();
let token: SoftHsmToken;
let work: string;
/** The HSM configuration an operator writes: module, token, a mode-0600 PIN file. */
let hsmConfig: string;

beforeAll(() => {
  token = createSoftHsmToken();
  work = mkdtempSync(join(tmpdir(), 'bulwark-cli-hsm-'));
  writeFileSync(join(token.dir, 'hsm.pin'), `${token.pin}\n`, { mode: 0o600 });
  hsmConfig = join(token.dir, 'bulwark-hsm.toml');
  writeFileSync(hsmConfig, `module = "${token.module}"\ntoken_label = "${token.label}"\npin_file = "hsm.pin"\n`);
});
afterAll(() => {
  token.remove();
  rmSync(work, { recursive: true, force: true });
});

async function bulwark(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: { PATH: process.env['PATH'] ?? '', SOFTHSM2_CONF: process.env['SOFTHSM2_CONF'] ?? '', ...env }, cwd: work };
  return { code: await run(argv, io), stdout, stderr };
}

/** Every file of a directory with its bytes (absent: none). */
/** The files of a directory (not its subdirectories) with their bytes; absent: none. */
const snapshot = (dir: string): [string, string][] =>
  existsSync(dir) ? readdirSync(dir).sort().filter((n) => statSync(join(dir, n)).isFile()).map((n) => [n, readFileSync(join(dir, n), 'base64')]) : [];

describe('bulwark keys hsm provision, init and backup on an HSM (SoftHSM2)', () => {
  let rootB64: string;

  it('provisions the root inside the token, which neither a read of its value nor a wrap gets out, and refuses a token that already holds a root', async () => {
    const made = await bulwark(['keys', 'hsm', 'provision', '--hsm-config', hsmConfig, '--json']);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const report = JSON.parse(made.stdout) as { root: { created: boolean; publicKeyBase64: string }; kek: { created: boolean } };
    expect(report.root.created).toBe(true);
    expect(report.kek.created).toBe(true);
    rootB64 = report.root.publicKeyBase64;

    // An attacker in its own process, with the module and the PIN.
    expect(attackTokenKey(token, 'bulwark-root', 'read-value')).toMatch(/^REFUSED .*CKR_ATTRIBUTE_SENSITIVE/);
    expect(attackTokenKey(token, 'bulwark-root', 'wrap-out')).toMatch(/^REFUSED .*CKR_KEY_UNEXTRACTABLE/);

    // Provisioned again: refused, nothing made; with --keep-existing the same root is kept.
    const again = await bulwark(['keys', 'hsm', 'provision', '--hsm-config', hsmConfig]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds a root key labelled "bulwark-root"; nothing was made \(pass --keep-existing/);
    const kept = await bulwark(['keys', 'hsm', 'provision', '--hsm-config', hsmConfig, '--keep-existing', '--json']);
    expect(kept.code).toBe(0);
    expect(JSON.parse(kept.stdout)).toMatchObject({ root: { created: false, publicKeyBase64: rootB64 }, kek: { created: false } });
    const human = await bulwark(['keys', 'hsm', 'provision', '--hsm-config', hsmConfig, '--keep-existing']);
    expect(human.stdout).toMatch(/back the token up by the HSM's own means/);
    // A wrong PIN does not get in.
    expect((await bulwark(['keys', 'hsm', 'provision', '--hsm-config', token.configPath], { SYMBIONT_HSM_PIN: 'not-the-pin' })).stderr).toMatch(/the PIN is wrong \(CKR_PIN_INCORRECT\)/);
  });

  it('init --key-store hsm pins the token root, writes no root file, and signs the entries in the token', async () => {
    const dir = join(work, 'km');
    // NATS is not reachable here: init keeps the keys and says it could not publish (exit 1).
    const r = await bulwark(['init', '--dir', dir, '--key-store', 'hsm', '--hsm-config', hsmConfig, '--nats', 'nats://127.0.0.1:1', '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { keyStore: string; kekSource: string; root: { created: boolean; publicKeyBase64: string; location: string }; publish: { ok: boolean } };
    expect(report).toMatchObject({ keyStore: 'hsm', root: { created: false, publicKeyBase64: rootB64 }, publish: { ok: false } });
    expect(report.root.location).toBe(`pkcs11:${token.module}#${token.label}/bulwark-root`);
    expect(report.kekSource).toBe(`pkcs11:${token.module}#${token.label}/bulwark-kek`);
    expect(readRootPinFile(join(dir, 'root.pub'))).toBe(rootB64);
    const names = readdirSync(dir);
    expect(names.filter((n) => n.startsWith('root.ed25519'))).toEqual([]);
    expect(names).toContain('svc.key-manager.ed25519.v1.json');
    // Each entry init kept verifies under the token's root.
    const entries = readdirSync(join(dir, 'entries'));
    expect(entries.length).toBe(7);
    for (const name of entries) {
      const signed = decodeSignedDirectoryEntry(new Uint8Array(Buffer.from(readFileSync(join(dir, 'entries', name), 'utf8').trim(), 'base64')));
      expect(provider.ed25519.verify(new Uint8Array(Buffer.from(rootB64, 'base64')), encodeDirectoryEntry(signed.entry), signed.signature)).toBe(true);
    }
    // The key files open under the token's KEK, and without the token (a software KEK) not at all.
    const hsm = await openHsmKeyStore({ configPath: hsmConfig, dir, provider });
    const keys = await hsm.store.list();
    try {
      expect(keys.length).toBeGreaterThan(20);
      for (const info of keys) (await hsm.store.get(info)).secretKey.fill(0);
    } finally {
      hsm.close();
    }
    const software = await FileKeyStore.open({ dir, wrapper: loadKek({ provider, env: { SYMBIONT_KEK: toBase64(new Uint8Array(32).fill(7)) } }), provider });
    await expect(software.get(keys[0]!)).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
    // A second init keeps everything.
    const again = await bulwark(['init', '--dir', dir, '--key-store', 'hsm', '--hsm-config', hsmConfig, '--nats', 'nats://127.0.0.1:1', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ alreadyInitialised: true, root: { publicKeyBase64: rootB64 } });
    // A store made under a KEK file (its root a file) is refused on the token, and left as it was.
    const fileDir = join(work, 'file-store');
    const kekEnv = { SYMBIONT_KEK: toBase64(new Uint8Array(32).fill(9)) };
    await bulwark(['init', '--dir', fileDir, '--nats', 'nats://127.0.0.1:1', '--json'], kekEnv);
    const before = snapshot(fileDir);
    const mixed = await bulwark(['init', '--dir', fileDir, '--key-store', 'hsm', '--hsm-config', hsmConfig, '--nats', 'nats://127.0.0.1:1'], kekEnv);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/holds a root key file: it is a store under a software KEK, not the HSM's/);
    expect(snapshot(fileDir)).toEqual(before);
    // A token without a root: init makes none (provisioning is an operator's explicit act).
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'empty', '--pin', token.pin, '--so-pin', `${token.pin}-so`], { stdio: 'pipe' });
    const emptyConfig = join(token.dir, 'empty.toml');
    writeFileSync(emptyConfig, `module = "${token.module}"\ntoken_label = "empty"\npin_file = "hsm.pin"\n`);
    const none = await bulwark(['init', '--dir', join(work, 'km-empty'), '--key-store', 'hsm', '--hsm-config', emptyConfig, '--nats', 'nats://127.0.0.1:1']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/has no root key pair labelled "bulwark-root" \(provision the token first\)/);
    expect(existsSync(join(work, 'km-empty'))).toBe(false);
  });

  it('backs the HSM store up signed by the token, restores it onto an empty target with the token, and refuses a wrong share, a tampered manifest, a foreign pin, writing nothing', async () => {
    const dir = join(work, 'km');
    const holders = ['analyst.a', 'analyst.b', 'analyst.c'].map((id) => {
      const keys = provider.x25519.generateKeyPair();
      const file = join(work, `${id}.key`);
      writeFileSync(file, toBase64(keys.secretKey), { mode: 0o600 });
      return { id, publicKey: toBase64(keys.publicKey), file };
    });
    const hsmEnv = { SYMBIONT_KEY_STORE_TYPE: 'hsm', SYMBIONT_HSM_CONFIG_PATH: hsmConfig };
    const out = join(work, 'km.backup');
    const made = await bulwark(['keys', 'backup', '--holders', '2-of-3', ...holders.flatMap((h) => ['--holder', `${h.id}=${h.publicKey}`]), '--out', out, '--no-anchor'], { ...hsmEnv, SYMBIONT_KEY_DIR: dir });
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/The root is in the HSM \(pkcs11:.*#bulwark\/bulwark-root\), not in this backup, and cannot be exported: back the token up by the HSM's own means/);

    const target = join(work, 'restored', 'keys');
    const restore = (manifest: string, keys: { id: string; file: string }[], extra: string[] = [], env: Record<string, string> = hsmEnv) =>
      bulwark(['keys', 'restore', '--in', manifest, ...keys.flatMap((h) => ['--holder-key', `${h.id}=${h.file}`]), '--to', target, '--root-public-key', rootB64, '--no-anchor-check', ...extra], env);

    // A wrong share: analyst.b's slot opened with analyst.c's key.
    const wrongShare = await restore(out, [holders[0]!, { id: 'analyst.b', file: holders[2]!.file }]);
    expect(wrongShare.code).not.toBe(0);
    expect(wrongShare.stderr).toMatch(/share 1 \(holder analyst.b\) does not open/);
    // A tampered manifest (one byte of the payload): the token's signature no longer holds.
    const manifest = JSON.parse(readFileSync(out, 'utf8')) as { ciphertext: string };
    const bytes = Buffer.from(manifest.ciphertext, 'base64');
    bytes[5]! ^= 1;
    const tampered = join(work, 'tampered.backup');
    writeFileSync(tampered, JSON.stringify({ ...manifest, ciphertext: bytes.toString('base64') }));
    expect((await restore(tampered, holders.slice(0, 2))).stderr).toMatch(/not signed by the pinned root key/);
    // Restored as a file-KEK store: refused (it holds no root file).
    expect((await restore(out, holders.slice(0, 2), [], { SYMBIONT_KEK: toBase64(new Uint8Array(32).fill(7)) })).stderr).toMatch(/holds no root key file: it is of an HSM store/);
    expect(existsSync(join(work, 'restored'))).toBe(false);

    // The backup was made offline (--no-anchor): restored unchecked, and the restore says so.
    const ok = await restore(out, [holders[2]!, holders[0]!]);
    expect(ok.stderr).toMatch(/^warning: --no-anchor-check: backup [0-9a-f]+ \(sha256 [0-9a-f]{64}\) is restored WITHOUT checking the ledger/);
    expect(ok.code).toBe(0);
    expect(snapshot(target)).toEqual(snapshot(dir));
    const hsm = await openHsmKeyStore({ configPath: hsmConfig, dir: target, provider });
    hsm.close();
  });

  it('restore refuses a token whose root is not the pinned one, writing nothing', async () => {
    // A second token in the same SoftHSM, with its own root.
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'other', '--pin', token.pin, '--so-pin', `${token.pin}-so`], { stdio: 'pipe' });
    const otherConfig = join(token.dir, 'other.toml');
    writeFileSync(otherConfig, `module = "${token.module}"\ntoken_label = "other"\npin_file = "hsm.pin"\n`);
    expect((await bulwark(['keys', 'hsm', 'provision', '--hsm-config', otherConfig])).code).toBe(0);
    const holders = ['analyst.a', 'analyst.b'].map((id) => ({ id, file: join(work, `${id}.key`) }));
    const target = join(work, 'restored-other');
    const r = await bulwark(['keys', 'restore', '--in', join(work, 'km.backup'), ...holders.flatMap((h) => ['--holder-key', `${h.id}=${h.file}`]), '--to', target, '--root-public-key', rootB64, '--no-anchor-check'], {
      SYMBIONT_KEY_STORE_TYPE: 'hsm',
      SYMBIONT_HSM_CONFIG_PATH: otherConfig,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the token's root \(pkcs11:.*#other\/bulwark-root\) is not the pinned root; nothing restored/);
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('restoring'))).toEqual([]);
  });

  /** Every file under `dir` with its bytes, subdirectories included (absent: none). */
  const tree = (dir: string): [string, string][] =>
    existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name)).sort().map((f) => [f, readFileSync(f, 'base64')]) : [];
  /** The entry `principal add` kept for `id` in `dir`, checked under the pinned root public key. */
  const entryVerifies = (dir: string, id: string): boolean => {
    const signed = decodeSignedDirectoryEntry(new Uint8Array(Buffer.from(readFileSync(join(dir, 'entries', `${id}.v1.entry`), 'utf8').trim(), 'base64')));
    expect(signed.entry.id).toBe(id);
    return provider.ed25519.verify(new Uint8Array(Buffer.from(rootB64, 'base64')), encodeDirectoryEntry(signed.entry), signed.signature);
  };

  it('principal add offline on the HSM store signs the entry in the token; a wrong PIN, a missing token, another root, not a key manager store: refused, nothing written', async () => {
    const dir = join(work, 'km');
    const offline = ['--dir', dir, '--nats', 'nats://127.0.0.1:1'];
    const before = tree(dir);
    // A wrong PIN (the configuration without pin_file, the PIN from SYMBIONT_HSM_PIN).
    const wrongPin = await bulwark(['principal', 'add', `agent.${randomUUID()}`, ...offline, '--hsm-config', token.configPath], { SYMBIONT_HSM_PIN: 'not-the-pin' });
    expect(wrongPin.code).not.toBe(0);
    expect(wrongPin.stderr).toMatch(/the PIN is wrong \(CKR_PIN_INCORRECT\)/);
    // No token of that label.
    const absentConfig = join(token.dir, 'absent.toml');
    writeFileSync(absentConfig, `module = "${token.module}"\ntoken_label = "absent"\npin_file = "hsm.pin"\n`);
    const absent = await bulwark(['principal', 'add', `agent.${randomUUID()}`, ...offline, '--key-store', 'hsm', '--hsm-config', absentConfig]);
    expect(absent.code).not.toBe(0);
    expect(absent.stderr).toMatch(/HSM: no token labelled "absent" in /);
    // Another token (its own root, provisioned above): it would re-sign this store's principals.
    const other = await bulwark(['principal', 'add', `agent.${randomUUID()}`, ...offline, '--hsm-config', join(token.dir, 'other.toml')]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/the token's root pkcs11:.*#other\/bulwark-root is not the root of key directory .*km \(its root\.pub\); principal add will not re-sign its identities with another root/);
    expect(tree(dir)).toEqual(before);
    // A directory that is not a key manager's store on the token: refused, not even created.
    const elsewhere = join(work, 'not-a-store');
    const notStore = await bulwark(['principal', 'add', `agent.${randomUUID()}`, '--dir', elsewhere, '--hsm-config', hsmConfig, '--nats', 'nats://127.0.0.1:1']);
    expect(notStore.code).toBe(2);
    expect(notStore.stderr).toMatch(/it has no root\.pub: not a key manager's store on the HSM .*nothing written/);
    expect(existsSync(elsewhere)).toBe(false);
    // The HSM variables only inherited from the shell, on a directory that is no key manager's
    // store (an administrator's): enrolled through the key manager as before, not on the token.
    const admin = await bulwark(['principal', 'add', `agent.${randomUUID()}`, '--dir', join(work, 'admin-dir'), '--nats', 'nats://127.0.0.1:1'], {
      SYMBIONT_KEY_STORE_TYPE: 'hsm',
      SYMBIONT_HSM_CONFIG_PATH: hsmConfig,
      SYMBIONT_KEK: toBase64(new Uint8Array(32).fill(5)),
    });
    expect(admin.stderr).toMatch(/the key manager enrols principals .* has no keys of analyst\.admin: start the system/);

    // The token present with the right PIN: the entry signed in the token. NATS is unreachable
    // here: the keys and entry are kept and it says it could not publish (exit 1).
    const agent = `agent.${randomUUID()}`;
    const made = await bulwark(['principal', 'add', agent, ...offline, '--key-store', 'hsm', '--hsm-config', hsmConfig, '--json']);
    expect(made.code, made.stderr).toBe(1);
    const report = JSON.parse(made.stdout) as { created: string[]; signedBy: string; publish: { ok: boolean }; ed25519PublicKey: string };
    expect(report).toMatchObject({ created: ['ed25519', 'x25519'], signedBy: `the HSM's root pkcs11:${token.module}#${token.label}/bulwark-root`, publish: { ok: false } });
    expect(entryVerifies(dir, agent)).toBe(true);
    // Its keys are under the token's KEK, with the rest of the store.
    const hsm = await openHsmKeyStore({ configPath: hsmConfig, dir, provider });
    try {
      const infos = (await hsm.store.list(agent)).map((i) => i.kind).sort();
      expect(infos).toEqual(['ed25519', 'nats-user', 'x25519']);
      for (const info of await hsm.store.list(agent)) (await hsm.store.get(info)).secretKey.fill(0);
    } finally {
      hsm.close();
    }
    // The HSM configuration as the key manager takes it (SYMBIONT_KEY_STORE_TYPE, SYMBIONT_HSM_CONFIG_PATH).
    const analyst = await bulwark(['principal', 'add', 'analyst.hsm_admin', '--admin', ...offline], { SYMBIONT_KEY_STORE_TYPE: 'hsm', SYMBIONT_HSM_CONFIG_PATH: hsmConfig });
    expect(analyst.code, analyst.stderr).toBe(1);
    expect(analyst.stdout).toMatch(/^analyst\.hsm_admin \(administrator\): identity created, .*; entry signed by the HSM's root pkcs11:/);
    expect(entryVerifies(dir, 'analyst.hsm_admin')).toBe(true);
  });

  it("principal add --dir <home>/key-manager/keys of an HSM home takes the home's recorded custody", async () => {
    const home = join(work, 'hsm-home');
    ensureHome(homeAt(home));
    const kmDir = homeAt(home).keyManagerKeysDir;
    expect((await bulwark(['init', '--dir', kmDir, '--key-store', 'hsm', '--hsm-config', hsmConfig, '--nats', 'nats://127.0.0.1:1'])).code).toBe(1);
    writeFileSync(homeAt(home).custodyFile, JSON.stringify({ format: 'bulwark-custody/v1', store: 'hsm', hsm_config: hsmConfig }));
    const agent = `agent.${randomUUID()}`;
    const r = await bulwark(['principal', 'add', agent, '--dir', kmDir, '--nats', 'nats://127.0.0.1:1', '--json'], { SYMBIONT_HOME: home });
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ signedBy: `the HSM's root pkcs11:${token.module}#${token.label}/bulwark-root` });
    expect(entryVerifies(kmDir, agent)).toBe(true);
  });

  // Last: it rotates the token's KEK, which the other stores of this file on the token were also under.
  it("keys rekek on the HSM store: a new key made in the token, every file rewrapped under it, the old one destroyed", async () => {
    const dir = join(work, 'km');
    const hsmEnv = { SYMBIONT_KEY_STORE_TYPE: 'hsm', SYMBIONT_HSM_CONFIG_PATH: hsmConfig, SYMBIONT_KEY_DIR: dir };
    const withFile = await bulwark(['keys', 'rekek', '--new-kek-file', join(work, 'kek')], hsmEnv);
    expect(withFile.code).toBe(2);
    expect(withFile.stderr).toMatch(/its new key-encryption key is made inside the token; run it without --new-kek-file/);
    const before = snapshot(dir);
    const r = await bulwark(['keys', 'rekek', '--json'], hsmEnv);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { rewrapped: number; files: number; resumed: boolean; token: string; label: string };
    expect(report).toMatchObject({ resumed: false, token: `pkcs11:${token.module}#${token.label}`, label: 'bulwark-kek' });
    expect(report.rewrapped).toBe(report.files);
    expect(report.files).toBeGreaterThan(20);
    const after = snapshot(dir);
    expect(after.map(([n]) => n)).toEqual(before.map(([n]) => n));
    expect(after.filter(([n, b]) => n.endsWith('.json') && before.find(([m]) => m === n)![1] !== b).length).toBe(report.files);
    const hsm = await openHsmKeyStore({ configPath: hsmConfig, dir, provider });
    try {
      for (const info of await hsm.store.list()) (await hsm.store.get(info)).secretKey.fill(0);
    } finally {
      hsm.close();
    }
  });
});
