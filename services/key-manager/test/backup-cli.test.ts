// `bulwark keys backup` / `restore` in-process: a key store backed up 2 of 3, restored into an
// empty directory where the same keys open under the same KEK; too few shares, a wrong holder
// key and a tampered backup are refused and write nothing. The restore checks the backup's anchor
// in the ledger by default: with no ledger database, or one that cannot be reached, it refuses and
// writes nothing; `--no-anchor-check` restores and warns which backup went unchecked.
// (test/keys-backup-restore.test.ts checks the anchor against a real ledger.)
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatVerifierKey, verifierKey } from '@bulwark/audit-ledger';
import { run, type CommandIO } from '@bulwark/cli';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { ensureIdentity, ensureRootKey, FileKeyStore, loadIdentity, SoftwareKek, writeRootPin } from '@bulwark/keystore';
import { afterAll, describe, expect, it } from 'vitest';

const provider = createNodeCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'bulwark-backup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bulwark keys backup / restore', () => {
  it('restores into an empty directory, and refuses too few shares, a wrong holder key or a tampered file, writing nothing', async () => {
    const kek = randomBytes(32);
    const keysDir = join(dir, 'keys');
    const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(provider, new Uint8Array(kek), 'SYMBIONT_KEK'), provider });
    const { root } = await ensureRootKey(store, provider);
    await ensureIdentity(store, provider, 'svc.policy');
    // The ledger's verifier key, as `bulwark init` writes it: the anchor is looked for in the ledger it verifies.
    const ledger = await ensureIdentity(store, provider, 'svc.audit-ledger');
    writeFileSync(join(keysDir, 'audit-ledger.vkey'), `${formatVerifierKey(verifierKey(provider, 'bulwark.local/audit', ledger.identity.ed25519.publicKey))}\n`);
    await writeRootPin(keysDir, root.keyPair.publicKey);
    const pin = Buffer.from(root.keyPair.publicKey).toString('base64');
    const holders = ['analyst.a', 'analyst.b', 'analyst.c'].map((id) => {
      const k = provider.x25519.generateKeyPair();
      const file = join(dir, `${id}.key`);
      writeFileSync(file, Buffer.from(k.secretKey).toString('base64'), { mode: 0o600 });
      return { id, pub: Buffer.from(k.publicKey).toString('base64'), file };
    });
    const bulwark = async (argv: string[], keyDir = keysDir) => {
      let stdout = '';
      let stderr = '';
      const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: { SYMBIONT_KEK: kek.toString('base64'), SYMBIONT_KEY_DIR: keyDir }, cwd: dir };
      return { code: await run(argv, io), stdout, stderr };
    };
    const out = join(dir, 'backup.json');
    const b = await bulwark(['keys', 'backup', '--holders', '2-of-3', ...holders.flatMap((h) => ['--holder', `${h.id}=${h.pub}`]), '--out', out, '--no-anchor', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ threshold: 2 });
    expect((JSON.parse(b.stdout) as { files: number }).files).toBeGreaterThanOrEqual(4);
    const restore = (to: string, who: { id: string; file: string }[], file = out, extra: string[] = []) =>
      bulwark(['keys', 'restore', '--in', file, ...who.flatMap((h) => ['--holder-key', `${h.id}=${h.file}`]), '--to', to, '--root-public-key', pin, ...extra]);

    const one = await restore(join(dir, 'r1'), [holders[0]!]);
    expect(one.stderr).toMatch(/needs 2 shares, 1 given/);
    expect(existsSync(join(dir, 'r1'))).toBe(false);
    const wrong = await restore(join(dir, 'r2'), [holders[0]!, { id: 'analyst.b', file: holders[2]!.file }]);
    expect(wrong.stderr).toMatch(/share 1 \(holder analyst.b\) does not open/);
    expect(existsSync(join(dir, 'r2'))).toBe(false);
    const tampered = join(dir, 'tampered.json');
    writeFileSync(tampered, readFileSync(out, 'utf8').replace(/"threshold":2/, '"threshold":1'));
    expect((await restore(join(dir, 'r3'), [holders[0]!], tampered)).stderr).toMatch(/not signed by the pinned root/);
    expect(existsSync(join(dir, 'r3'))).toBe(false);

    // The anchor is checked by default: no ledger database set, or one not reachable, is a refusal.
    const noLedger = await restore(join(dir, 'r4'), [holders[2]!, holders[1]!]);
    expect(noLedger.code).toBe(2);
    expect(noLedger.stderr).toMatch(/cannot check backup [0-9a-f-]+'s anchor: the ledger database \(schema audit_ledger at \(no database set\)\) cannot be opened .*nothing restored.*--no-anchor-check/);
    expect(existsSync(join(dir, 'r4'))).toBe(false);
    const unreachable = await restore(join(dir, 'r5'), [holders[2]!, holders[1]!], out, ['--database', 'postgres://postgres:hunter2@127.0.0.1:1/ledger']);
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr).toMatch(/the ledger database \(schema audit_ledger at postgres:\/\/postgres:\*+@127\.0\.0\.1:1\/ledger\) cannot be opened .*--no-anchor-check/);
    expect(unreachable.stderr).not.toContain('hunter2');
    expect(existsSync(join(dir, 'r5'))).toBe(false);
    expect((await restore(join(dir, 'r6'), [holders[2]!, holders[1]!], out, ['--no-anchor-check', '--database', 'postgres://127.0.0.1/x'])).stderr).toMatch(/do not go with --no-anchor-check/);
    expect(existsSync(join(dir, 'r6'))).toBe(false);

    // --no-anchor-check: restored, with a warning naming the backup and the hash left unchecked.
    const { backupId, hash } = JSON.parse(b.stdout) as { backupId: string; hash: string };
    const good = await restore(join(dir, 'restored'), [holders[2]!, holders[1]!], out, ['--no-anchor-check', '--json']);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toContain(`warning: --no-anchor-check: backup ${backupId} (sha256 ${hash}) is restored WITHOUT checking the ledger`);
    expect(JSON.parse(good.stdout)).toMatchObject({ backupId, sha256: hash, anchorChecked: false, anchoredAtSeq: null });
    const restored = await FileKeyStore.open({ dir: join(dir, 'restored'), wrapper: new SoftwareKek(provider, new Uint8Array(kek), 'SYMBIONT_KEK'), provider });
    expect((await loadIdentity(restored, 'svc.policy')).x25519.publicKey).toEqual((await loadIdentity(store, 'svc.policy')).x25519.publicKey);
    // Never into a directory that has something in it.
    expect((await restore(join(dir, 'restored'), [holders[0]!, holders[1]!])).stderr).toMatch(/is not empty/);
  });
});
