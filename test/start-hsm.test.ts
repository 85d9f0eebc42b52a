// `bulwark up` with the key manager's custody on an HSM (issue 12), as an operator runs it: a
// SoftHSM2 token made by this test (its own SOFTHSM2_CONF and token directory, removed after),
// provisioned with `bulwark keys hsm provision`, then `bulwark up --key-store hsm --hsm-config F`
// on a fresh home (its own nats-server; the ledger on PostgreSQL in a schema of its own). The
// pinned root is the token's, no root key file exists anywhere in the home, the key manager runs
// from the token and answers `bulwark keys list` and `bulwark demo` (its key step's entries signed
// in the token), and no other service is given the HSM's
// configuration or PIN (from the operator's environment), or any key but its own. The home's custody is recorded: a later start
// asking for a file KEK is refused before anything starts. A backup of the key manager's store made
// while it runs is anchored in the ledger and restored onto an empty directory with the token.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, loadKek, readRootPinFile } from '@bulwark/keystore';
import { createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { homeAt } from '../libs/cli/src/home/home.js';
import { isAlive, readRunState, type RunState } from '../libs/cli/src/home/state.js';
import { environOf, isolatedEnv, runBulwark, spawnUp, untilPrinted, type Spawned } from './bulwark-process.js';

const DATABASE = process.env['DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `start_hsm_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
const home = mkdtempSync(join(tmpdir(), 'bulwark-start-hsm-'));
const provider = createCryptoProvider();
let token: SoftHsmToken;
let hsmConfig: string;

/** The machine's environment without the shared NATS or any key setting; the token's SOFTHSM2_CONF kept. */
const env = (): NodeJS.ProcessEnv => isolatedEnv({ SYMBIONT_HSM_PIN: token.pin, DATABASE_URL: DATABASE, SYMBIONT_LEDGER_SCHEMA: SCHEMA });

const bulwark = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 60_000) => runBulwark(args, { env: { ...env(), ...extraEnv }, timeoutMs });

let up: Spawned | undefined;
const readState = (): RunState => readRunState(homeAt(home))!;

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1));
}

const WRAPPED_KEY = /^(.+)\.(ed25519|x25519|nats-operator|nats-account|nats-system-account|nats-user)\.v\d+\.json$/;

beforeAll(() => {
  token = createSoftHsmToken();
  // The PIN from the operator's environment (SYMBIONT_HSM_PIN): the key manager's alone to see.
  hsmConfig = join(token.dir, 'bulwark-hsm.toml');
  writeFileSync(hsmConfig, `module = "${token.module}"\ntoken_label = "${token.label}"\n`);
});

afterAll(async () => {
  if (up !== undefined && up.child.exitCode === null) {
    try {
      const state = readState();
      for (const pid of [state.pid, state.nats.pid, ...state.services.map((s) => s.pid)]) if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // No state file.
    }
    try {
      process.kill(-up.child.pid!, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  const db = new pg.Client({ connectionString: DATABASE });
  await db.connect();
  await db.query(`drop schema if exists ${SCHEMA} cascade`).catch(() => undefined);
  await db.end();
  token.remove();
  rmSync(home, { recursive: true, force: true });
});

describe('bulwark up with the key manager on an HSM (SoftHSM2)', () => {
  it('provisions the token, starts every service with the key manager on it, answers keys list, passes the demo, and gives no other process the HSM or the root', { timeout: 240_000 }, async () => {
    const provisioned = await bulwark(['keys', 'hsm', 'provision', '--hsm-config', hsmConfig, '--json']);
    expect(provisioned.code, provisioned.stderr).toBe(0);
    const rootB64 = (JSON.parse(provisioned.stdout) as { root: { publicKeyBase64: string } }).root.publicKeyBase64;

    const started = Date.now();
    up = spawnUp(home, env(), ['--key-store', 'hsm', '--hsm-config', hsmConfig]);
    await untilPrinted(up, 'Bulwark is up');
    console.log(`bulwark up --key-store hsm: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(up.output()).toMatch(/wrapped by the HSM's key; the root in the token/);
    expect(up.output()).not.toMatch(/development key-encryption key in .*key-manager/);

    // The pinned root is the token's; no root key file anywhere in the home; no key manager KEK file.
    expect(readRootPinFile(join(home, 'admin', 'root.pub'))).toBe(rootB64);
    expect(filesUnder(home).filter((f) => /(^|\/)root\.ed25519\./.test(f))).toEqual([]);
    expect(existsSync(join(home, 'key-manager', 'kek'))).toBe(false);
    expect(JSON.parse(readFileSync(join(home, 'key-manager', 'custody.json'), 'utf8'))).toEqual({ format: 'bulwark-custody/v1', store: 'hsm', hsm_config: hsmConfig });

    // The key manager answers, from the token.
    const listed = await bulwark(['keys', 'list', '--as', 'analyst.admin', '--json'], { SYMBIONT_HOME: home });
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toHaveProperty('principals');
    // The demo: its key step has entries signed by the token's root (invite, enrol, rotate, revoke).
    const demo = await bulwark(['demo', '--dir', home], {}, 120_000);
    expect(demo.stdout, demo.stderr).toMatch(/demo: all \d+ steps gave what they should/);
    expect(demo.stdout).toContain('ok: an agent enrolled with a join token, its key rotated mid-run, then revoked: its next call is denied');

    // Who got what: the key manager the HSM (no KEK file); everyone else its own keys, under the home KEK, and no HSM.
    const state = readState();
    for (const service of state.services) {
      const e = environOf(service.pid!);
      if (service.name === 'key-manager') {
        expect(e).toMatchObject({ SYMBIONT_KEY_STORE_TYPE: 'hsm', SYMBIONT_HSM_CONFIG_PATH: hsmConfig, SYMBIONT_KEY_DIR: join(home, 'key-manager', 'keys') });
        expect(e['SYMBIONT_KEK_FILE']).toBeUndefined();
        expect(e['SYMBIONT_HSM_PIN']).toBe(token.pin);
        continue;
      }
      expect(e['SYMBIONT_KEY_STORE_TYPE'], service.name).toBe('file');
      expect(e['SYMBIONT_HSM_CONFIG_PATH'], service.name).toBeUndefined();
      expect(e['SYMBIONT_HSM_PIN'], service.name).toBeUndefined();
      expect(Object.values(e).some((v) => v.includes(hsmConfig) || v === token.pin), service.name).toBe(false);
      const owners = new Set(readdirSync(e['SYMBIONT_KEY_DIR']!).flatMap((n) => WRAPPED_KEY.exec(n)?.[1] ?? []));
      expect([...owners], service.name).toEqual([service.principal]);
    }
    // The key manager's files do not open under the home KEK (they are the token's to unwrap).
    const homeKek = loadKek({ provider, env: { SYMBIONT_KEK_FILE: join(home, 'kek') } });
    const km = await FileKeyStore.open({ dir: join(home, 'key-manager', 'keys'), wrapper: homeKek, provider });
    const kmKeys = await km.list();
    expect(kmKeys.length).toBeGreaterThan(0);
    for (const info of kmKeys) await expect(km.get(info)).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });

    // A backup of the key manager's store while it runs: anchored in the ledger as svc.key-manager
    // (its identity from the token-wrapped store), the manifest signed by the token; restored with
    // its anchor checked in the ledger (the default) onto an empty directory with the token present.
    const holders = ['analyst.a', 'analyst.b'].map((id) => {
      const keys = provider.x25519.generateKeyPair();
      const file = join(home, `${id}.key`);
      writeFileSync(file, Buffer.from(keys.secretKey).toString('base64'), { mode: 0o600 });
      return { id, publicKey: Buffer.from(keys.publicKey).toString('base64'), file };
    });
    const out = join(home, 'km.backup');
    const backup = await bulwark(['keys', 'backup', '--dir', home, '--holders', '2-of-2', ...holders.flatMap((h) => ['--holder', `${h.id}=${h.publicKey}`]), '--out', out, '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ keyStore: 'hsm', hsmToken: `pkcs11:${token.module}#${token.label}/bulwark-root`, anchorEventId: expect.any(String) });
    const restoredTo = join(home, 'restored', 'keys');
    const restored = await bulwark(['keys', 'restore', '--in', out, ...holders.flatMap((h) => ['--holder-key', `${h.id}=${h.file}`]), '--to', restoredTo, '--root-public-key', rootB64, '--json'], {
      SYMBIONT_KEY_STORE_TYPE: 'hsm',
      SYMBIONT_HSM_CONFIG_PATH: hsmConfig,
    });
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ anchorChecked: true, anchoredAtSeq: expect.any(Number) });
    const kmDir = join(home, 'key-manager', 'keys');
    expect(readdirSync(restoredTo).sort()).toEqual(readdirSync(kmDir).filter((n) => statSync(join(kmDir, n)).isFile()).sort());

    process.kill(-up.child.pid!, 'SIGINT');
    expect((await up.exited).code).toBe(0);

    // The home's custody was chosen at its first start: a file KEK now is refused, nothing started.
    const other = await bulwark(['up', '--dir', home, '--key-store', 'file']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/the key manager's keys are under the HSM of .*bulwark-hsm\.toml .*, not a KEK file; a home's custody is chosen at its first start/);
    expect(existsSync(join(home, 'key-manager', 'kek'))).toBe(false);
  });
});
