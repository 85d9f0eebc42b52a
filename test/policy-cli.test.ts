// `bulwark policy push|list|rollback` in-process, with the policy service running in this
// process and the ledger stand-in of services/policy/test/world.ts, under the configuration
// `bulwark init` writes (DESIGN §3a): a private nats-server; the CLI connects as it does in a
// deployment (the --as principal's keys and NATS user from init's key store, the directory
// from KV), and so do the service and the stand-in, each as its own principal.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBulwarkClient } from '@bulwark/client';
import { ADMIN, harness, provider, silentReporter, type Harness } from '../services/policy/test/world.js';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const SEED = `// the seed's data access policy
policy secure_data_access {
    allow: read(sensitive_data) if user.clearance >= "secret"
}
`;
const TWO = `policy a { allow: read(x) }
policy b { deny: write(x) }
`;

/** A policy administrator on the bus (NATS user with the admin commands) whom the service does not list in `admins`. */
const UNLISTED = 'analyst.unlisted';

describe('bulwark policy push | list | rollback', () => {
  let b: PrivateBulwark;
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    b = await startPrivateBulwark();
    await b.addPrincipal(UNLISTED, { admin: true });
    h = await harness({ deployment: { of: b, agent: await b.addAgent() } });
    await h.start();
    dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-cli-'));
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await b?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The real `bulwark` in-process (its own connection from the key store), in the directory of the policy files. */
  async function bulwark(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const r = await b.bulwark([...argv, '--nats', b.url, '--namespace', b.namespaceName], { cwd: dir });
    return { code: r.code, out: r.stdout, err: r.stderr };
  }

  it('pushes files (register, then update), lists, and rolls back, each through the ledger', async () => {
    writeFileSync(join(dir, 'seed.policy'), SEED);
    writeFileSync(join(dir, 'two.policy'), TWO);
    const first = await bulwark('policy', 'push', 'seed.policy', 'two.policy', '--as', ADMIN);
    expect(first).toMatchObject({ code: 0 });
    expect(first.out).toMatch(/^registered secure_data_access version 1 \(in force, set ledger-\d+\)\nregistered a version 1 .*\nregistered b version 1 /);
    // Comments survive: a one-policy file goes to the ledger as written.
    expect(h.ledger.committed[0]!.details['text']).toBe(SEED);
    // The change is the --as principal's: the service names the session's authenticated peer.
    expect(h.ledger.committed[0]).toMatchObject({ agentId: ADMIN, details: expect.objectContaining({ by: ADMIN }) });

    writeFileSync(join(dir, 'seed.policy'), SEED.replace('"secret"', '"top_secret"'));
    const again = await bulwark('policy', 'push', '.', '--as', ADMIN, '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toEqual([
      expect.objectContaining({ action: 'updated', name: 'secure_data_access', version: 2, applied: true }),
      expect.objectContaining({ action: 'updated', name: 'a', version: 2 }),
      expect.objectContaining({ action: 'updated', name: 'b', version: 2 }),
    ]);

    const listed = await bulwark('policy', 'list', '--as', ADMIN);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain('secure_data_access  version 2 of [1, 2]  1 rules  seed.policy');

    const rolled = await bulwark('policy', 'rollback', 'secure_data_access', '--to', '1', '--as', ADMIN);
    expect(rolled).toMatchObject({ code: 0, out: expect.stringMatching(/^rolled back secure_data_access to version 1 \(in force/) });
    const agent = createBulwarkClient({ bus: await h.connect(h.agent), sessions: { provider, self: h.world.identity(h.agent), directory: h.world.directory }, rejections: silentReporter(h.agent) });
    expect(await agent.policy.evaluate({ action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'secret' } } })).toMatchObject({ decision: 'Allow', version: 1 });
  });

  it('exits 2 on a parse error (naming file:line:col) before changing anything, on an unknown version, and without a principal', async () => {
    const before = h.ledger.committed.length;
    writeFileSync(join(dir, 'bad.policy'), 'policy bad {\n  allow: read(x) if\n}\n');
    const bad = await bulwark('policy', 'push', 'bad.policy', '--as', ADMIN);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/bad\.policy:3:1/);
    const unknown = await bulwark('policy', 'rollback', 'secure_data_access', '--to', '9', '--as', ADMIN);
    expect(unknown).toMatchObject({ code: 2, err: expect.stringContaining('has no version 9') });
    expect((await bulwark('policy', 'rollback', 'x', '--to', 'one', '--as', ADMIN)).code).toBe(2);
    expect((await bulwark('policy', 'list')).code).toBe(2);
    expect(h.ledger.committed.length).toBe(before);
  });

  it('exits 1 when the principal is not a policy administrator', async () => {
    writeFileSync(join(dir, 'seed.policy'), SEED);
    // The bus lets an administrator's user send the command (an agent's may not even send it: DESIGN §3a,
    // test/attack/nats-permissions.test.ts); the service refuses whom its list does not name.
    const refused = await bulwark('policy', 'push', 'seed.policy', '--as', UNLISTED);
    expect(refused).toMatchObject({ code: 1, err: expect.stringContaining('not a policy administrator') });
  });
});
