import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, removeDirectoryBucket, removeNamespaceStreams } from '@bulwark/bus';
import { ensureHome, homeAt } from '../home/home.js';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';
import { namespaceFromName } from './init.js';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-principal-'));
const namespace = `Tprin${randomBytes(5).toString('hex')}`;
const env = { SYMBIONT_KEK: randomBytes(32).toString('base64') };

async function bulwarkIn(argv: string[], withEnv: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: withEnv, cwd: dir };
  return { code: await run(argv, io), stdout, stderr };
}
const bulwark = (argv: string[]) => bulwarkIn(argv, env);
const add = (...args: string[]) => bulwark(['principal', 'add', ...args, '--namespace', namespace, '--nats', NATS_URL]);

describe('bulwark principal add', () => {
  beforeAll(async () => {
    expect((await bulwark(['init', '--namespace', namespace, '--nats', NATS_URL])).code).toBe(0);
  });
  afterAll(async () => {
    const bus = await connectBus({ url: NATS_URL, name: 'principal-test-cleanup', namespace: namespaceFromName(namespace) });
    await removeDirectoryBucket(bus);
    await removeNamespaceStreams(bus);
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enrols an agent (identity, directory entry, NATS user) and keeps everything on a re-run', async () => {
    const id = `agent.${randomUUID()}`;
    const creds = join(dir, 'agent.creds');
    const first = await add(id, '--json', '--creds-out', creds);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout) as { created: string[]; nats: { user: string; created: boolean; inboxPrefix: string }; publish: { ok: boolean; outcome: string } };
    expect(report.created).toEqual(['ed25519', 'x25519']);
    expect(report.nats).toMatchObject({ created: true, inboxPrefix: `_INBOX.${id.replace('.', '_')}` });
    expect(report.nats.user).toMatch(/^U[A-Z2-7]{55}$/);
    expect(report.publish).toMatchObject({ ok: true, outcome: 'created' });
    expect(statSync(creds).mode & 0o777).toBe(0o600);
    expect(readFileSync(creds, 'utf8')).toContain('-----BEGIN NATS USER JWT-----');

    const again = await add(id);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`${id}: identity kept`);
    expect(again.stdout).toContain(`NATS user ${report.nats.user} (kept)`);
    expect(again.stdout).toContain('directory entry unchanged');
  });

  it('enrols an administrator analyst', async () => {
    const r = await add('analyst.j_doe', '--admin');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^analyst\.j_doe \(administrator\): identity created/);
  });

  it("exports one principal's own keys to a directory of their own", async () => {
    const out = join(dir, 'policy-keys');
    const r = await bulwark(['principal', 'export', 'svc.policy', '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { files: string[] }).files).toEqual(['svc.policy.ed25519.v1.json', 'svc.policy.nats-user.v1.json', 'svc.policy.nats-user.v1.jwt', 'svc.policy.x25519.v1.json', 'root.pub']);
    expect(statSync(out).mode & 0o777).toBe(0o700);
  });

  it('in a home before the first bulwark up, says the key manager enrols principals and signs nothing with a root', async () => {
    const home = join(dir, 'fresh-home');
    ensureHome(homeAt(home));
    const id = `agent.${randomUUID()}`;
    const r = await bulwarkIn(['principal', 'add', id, '--nats', NATS_URL], { ...env, SYMBIONT_HOME: home });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bulwark: bulwark principal add ${id}: the key manager enrols principals (it alone holds the root key), as an administrator; ${join(home, 'admin')} has no keys of analyst.admin: start the system with \`bulwark up\` (which makes them) and run this again\n`);
    // Nothing was made: no keys, no entry, no root anywhere in the home.
    const files = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(d, e.name)) : [join(d, e.name)]));
    expect(files(home).filter((f) => !f.endsWith('bulwark-home.json'))).toEqual([]);
  });

  it('refuses services, agent administrators and malformed ids with exit 2', async () => {
    const svc = await add('svc.policy');
    expect(svc).toMatchObject({ code: 2, stderr: 'bulwark: bulwark principal add svc.policy: services are enrolled by bulwark init\n' });
    const admin = await add(`agent.${randomUUID()}`, '--admin');
    expect(admin.code).toBe(2);
    expect(admin.stderr).toMatch(/only analysts can be administrators/);
    const bad = await add('agent.nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not a principal id/);
  });
});
