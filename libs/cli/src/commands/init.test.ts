import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectBus, KvDirectory, removeDirectoryBucket, removeNamespaceStreams, ServicePrincipals, type Bus, type DirectoryRejection } from '@bulwark/bus';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { parseRootPublicKey } from '@bulwark/keystore';
import { parseVerifierKey } from '@bulwark/audit-ledger';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';
import { namespaceFromName } from './init.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const provider = createNodeCryptoProvider();
const SERVICES = Object.values(ServicePrincipals);
/** The six services and the first administrator init enrols. */
const PRINCIPALS = [...SERVICES, 'analyst.admin'];

let dir: string;
let namespace: string;
let kek: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-init-'));
  namespace = `Tinit${randomBytes(5).toString('hex')}`;
  kek = randomBytes(32).toString('base64');
});

afterEach(async () => {
  const bus = await connectBus({ url: NATS_URL, name: 'init-test-cleanup', namespace: namespaceFromName(namespace) });
  await removeDirectoryBucket(bus);
  await removeNamespaceStreams(bus);
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

async function bulwark(argv: string[], env: Record<string, string> = { SYMBIONT_KEK: kek }): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: dir };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

function init(...extra: string[]): string[] {
  return ['init', '--namespace', namespace, '--nats', NATS_URL, ...extra];
}

interface InitJson {
  dir: string;
  alreadyInitialised: boolean;
  root: { created: boolean; publicKeyBase64: string; publicKeyHex: string; pinFile: string };
  principals: { id: string; version: number; created: string[]; published: string | null; ed25519PublicKey: string }[];
  ledgerVerifierKey: { file: string; key: string };
  publish: { ok: boolean; bucket: string; error?: string };
}

const keysDir = (): string => join(dir, '.bulwark', 'keys');

function keyFiles(): Record<string, string> {
  return Object.fromEntries(
    readdirSync(keysDir(), { withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => [e.name, readFileSync(join(keysDir(), e.name), 'utf8')]),
  );
}

async function openDirectory(bus: Bus, rootPublicKey: Uint8Array, rejections: DirectoryRejection[]): Promise<KvDirectory> {
  return KvDirectory.open(bus, { provider, rootPublicKey, onRejected: (r) => rejections.push(r) });
}

describe('bulwark init', () => {
  it('creates the root key, six service identities and the administrator, writes root.pub, and publishes entries a pinned peer accepts', async () => {
    const { code, stdout, stderr } = await bulwark(init('--json'));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as InitJson;
    expect(report.dir).toBe(keysDir());
    expect(report.alreadyInitialised).toBe(false);
    expect(report.root.created).toBe(true);
    expect(report.principals.map((p) => [p.id, p.created, p.published])).toEqual(PRINCIPALS.map((id) => [id, ['ed25519', 'x25519'], 'created']));
    expect(report.publish).toEqual({ url: NATS_URL, bucket: `${namespace}_BULWARK_DIRECTORY`, ok: true });
    expect(Object.keys(keyFiles()).sort()).toEqual(
      [
        'root.ed25519.v1.json',
        'root.pub',
        // The ledger's verifier key, for `bulwark audit verify`.
        'audit-ledger.vkey',
        // The NATS authority (DESIGN §3a): nkey seeds under the KEK, their JWTs beside them.
        ...['nats-operator', 'nats-account', 'nats-system-account', 'nats-user'].flatMap((kind) => [`root.${kind}.v1.json`, `root.${kind}.v1.jwt`]),
        ...PRINCIPALS.flatMap((id) => [`${id}.ed25519.v1.json`, `${id}.x25519.v1.json`, `${id}.nats-user.v1.json`, `${id}.nats-user.v1.jwt`]),
      ].sort(),
    );
    expect(readFileSync(join(keysDir(), 'nats', 'nats-server.conf'), 'utf8')).toContain('resolver: MEMORY');
    // audit-ledger.vkey: the ledger's verifier key, from svc.audit-ledger's Ed25519 key, printed in the report too.
    const vkey = readFileSync(join(keysDir(), 'audit-ledger.vkey'), 'utf8').trim();
    expect(report.ledgerVerifierKey).toEqual({ file: join(keysDir(), 'audit-ledger.vkey'), key: vkey });
    expect(vkey.startsWith('bulwark.local/audit+')).toBe(true);
    const ledgerKey = report.principals.find((p) => p.id === 'svc.audit-ledger')!;
    expect(Buffer.from(parseVerifierKey(provider, vkey).publicKey).toString('base64')).toBe(ledgerKey.ed25519PublicKey);

    // The pin, read back from root.pub in both encodings, is the key that signed the entries.
    const pin = readFileSync(report.root.pinFile, 'utf8');
    const fromBase64 = parseRootPublicKey(/^base64: (\S+)$/m.exec(pin)![1]!, 'root.pub');
    expect(parseRootPublicKey(/^hex: (\S+)$/m.exec(pin)![1]!, 'root.pub')).toEqual(fromBase64);
    expect(Buffer.from(fromBase64).toString('base64')).toBe(report.root.publicKeyBase64);

    const bus = await connectBus({ url: NATS_URL, name: 'init-test-peer', namespace: namespaceFromName(namespace) });
    try {
      const rejections: DirectoryRejection[] = [];
      const directory = await openDirectory(bus, fromBase64, rejections);
      for (const id of PRINCIPALS) expect(directory.lookup(id)?.keyVersion).toBe(1);
      expect(rejections).toEqual([]);
      // A peer pinned to another root trusts none of them.
      const stranger: DirectoryRejection[] = [];
      const other = await openDirectory(bus, provider.ed25519.generateKeyPair().publicKey, stranger);
      for (const id of PRINCIPALS) expect(other.lookup(id)).toBeUndefined();
      expect(stranger.map((r) => r.reason)).toEqual(PRINCIPALS.map(() => 'E_ENTRY_SIGNATURE'));
    } finally {
      await bus.close();
    }
  });

  it('keeps every key on a re-run and republishes as unchanged', async () => {
    expect((await bulwark(init())).code).toBe(0);
    const before = keyFiles();
    const { code, stdout } = await bulwark(init());
    expect(code).toBe(0);
    expect(stdout).toContain('is already initialised: no key was generated');
    expect(stdout).toContain(`Republished 7 signed directory entries to ${namespace}_BULWARK_DIRECTORY on ${NATS_URL}: 0 created, 0 updated, 7 unchanged.`);
    expect(keyFiles()).toEqual(before);
  });

  it('prints the keys it made, the pin in both encodings, and the publication', async () => {
    const { code, stdout } = await bulwark(init());
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ {2}root +created {2}ed25519 v1/m);
    for (const id of PRINCIPALS) expect(stdout).toMatch(new RegExp(`^  ${id.replace('.', '\\.')} +created  ed25519 \\+ x25519 v1  valid until `, 'm'));
    expect(stdout).toMatch(/^ {2}base64: [A-Za-z0-9+/]{43}=$/m);
    expect(stdout).toMatch(/^ {2}hex: {4}[0-9a-f]{64}$/m);
    expect(stdout).toContain('Published 7 signed directory entries');
  });

  it('refuses to start without a KEK: one line, exit 2, nothing created', async () => {
    const { code, stdout, stderr } = await bulwark(init(), {});
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^bulwark: no key-encryption key: set SYMBIONT_KEK .* or SYMBIONT_KEK_FILE .*\n$/);
    expect(existsSync(join(dir, '.bulwark'))).toBe(false);
  });

  it('refuses a KEK file others can read, exit 2', async () => {
    const file = join(dir, 'kek');
    writeFileSync(file, kek);
    chmodSync(file, 0o644);
    const { code, stderr } = await bulwark(init(), { SYMBIONT_KEK_FILE: file });
    expect(code).toBe(2);
    expect(stderr).toContain('permissions 0644 are too open');
    chmodSync(file, 0o600);
    expect((await bulwark(init(), { SYMBIONT_KEK_FILE: file })).code).toBe(0);
  });

  it('names the key file when re-run under a different KEK, exit 1', async () => {
    expect((await bulwark(init())).code).toBe(0);
    const { code, stderr } = await bulwark(init(), { SYMBIONT_KEK: randomBytes(32).toString('base64') });
    expect(code).toBe(1);
    expect(stderr).toBe(`bulwark: key file ${join(keysDir(), 'root.ed25519.v1.json')} does not open with the key-encryption key from SYMBIONT_KEK: wrong KEK, or the file was altered or moved from another key\n`);
  });

  it('keeps the keys and exits 1 when NATS is unreachable, and publishes them on the next run', async () => {
    const { code, stdout } = await bulwark(['init', '--namespace', namespace, '--nats', 'nats://127.0.0.1:1']);
    expect(code).toBe(1);
    expect(stdout).toContain('Could not publish the directory');
    expect(stdout).toContain('The keys are kept in');
    const kept = keyFiles();
    expect(Object.keys(kept)).toHaveLength(3 + 4 * 2 + PRINCIPALS.length * 4);
    const again = await bulwark(init('--json'));
    expect(again.code).toBe(0);
    const report = JSON.parse(again.stdout) as InitJson;
    expect(report.alreadyInitialised).toBe(true);
    expect(report.principals.map((p) => p.published)).toEqual(PRINCIPALS.map(() => 'created'));
    expect(keyFiles()).toEqual(kept);
  });

  it('will not put a new root over identities whose root key is gone', async () => {
    expect((await bulwark(init())).code).toBe(0);
    unlinkSync(join(keysDir(), 'root.ed25519.v1.json'));
    const { code, stderr } = await bulwark(init());
    expect(code).toBe(1);
    expect(stderr).toMatch(/holds 25 keys but no root key; init will not create a new root/);
    expect(existsSync(join(keysDir(), 'root.ed25519.v1.json'))).toBe(false);
  });

  it('takes the key directory from --dir and rejects a bad --namespace with exit 2', async () => {
    const { code, stdout } = await bulwark(init('--dir', 'elsewhere', '--json'));
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as InitJson).dir).toBe(join(dir, 'elsewhere'));
    const bad = await bulwark(['init', '--namespace', 'a.b', '--nats', NATS_URL]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('bulwark: --namespace "a.b": use 1-40 letters, digits, _ and -\n');
  });

  it('writes the nats-server configuration for --nats-listen and --nats-monitor-port, and refuses bad ones with exit 2', async () => {
    const { code, stdout } = await bulwark(init('--nats-listen', '0.0.0.0:4999', '--nats-monitor-port', '8999', '--nats-config-dir', 'nats-conf', '--json'));
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { nats: { configFile: string; listen: string } };
    expect(report.nats).toMatchObject({ configFile: join(dir, 'nats-conf', 'nats-server.conf'), listen: '0.0.0.0:4999' });
    const text = readFileSync(report.nats.configFile, 'utf8');
    expect(text).toMatch(/^host: "0\.0\.0\.0"$/m);
    expect(text).toMatch(/^port: 4999$/m);
    expect(text).toMatch(/^http_port: 8999$/m);
    expect(text).toContain(`store_dir: "${join(dir, 'nats-conf')}"`);
    // Checked before anything is made.
    rmSync(join(dir, '.bulwark'), { recursive: true, force: true });
    expect((await bulwark(init('--nats-listen', 'a b:1'))).code).toBe(2);
    expect((await bulwark(init('--nats-monitor-port', '70000'))).code).toBe(2);
    expect((await bulwark(init('--admin', 'svc.policy'))).code).toBe(2);
    expect(existsSync(join(dir, '.bulwark'))).toBe(false);
  });

  it('warns when the configured pin is another key', async () => {
    const { code, stderr } = await bulwark(init(), { SYMBIONT_KEK: kek, SYMBIONT_ROOT_PUBLIC_KEY: '00'.repeat(32) });
    expect(code).toBe(0);
    expect(stderr).toBe('bulwark: warning: keys.root_public_key (env:SYMBIONT_ROOT_PUBLIC_KEY) is not this root key; peers pinned to it will reject these directory entries\n');
  });
});

describe('bulwark init as a process', () => {
  const bin = join(repoRoot, 'libs/cli/dist/bin.js');

  beforeAll(() => {
    execFileSync('npx', ['tsc', '-b', 'libs/cli'], { cwd: repoRoot, stdio: 'pipe' });
  }, 120_000);

  it('initialises, exits 0 and prints JSON; a re-run generates nothing', () => {
    const env = { PATH: process.env.PATH ?? '', SYMBIONT_KEK: kek, NATS_URL };
    const first = spawnSync(process.execPath, [bin, 'init', '--namespace', namespace, '--json'], { cwd: dir, env, encoding: 'utf8' });
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    const report = JSON.parse(first.stdout) as InitJson;
    expect(report.publish.ok).toBe(true);
    expect(report.principals).toHaveLength(7);
    const second = spawnSync(process.execPath, [bin, 'init', '--namespace', namespace], { cwd: dir, env, encoding: 'utf8' });
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('already initialised');
    const missing = spawnSync(process.execPath, [bin, 'init', '--namespace', namespace], { cwd: dir, env: { PATH: env.PATH }, encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});
