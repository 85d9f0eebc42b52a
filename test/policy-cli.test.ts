// `bulwark policy push|list|rollback` in-process against the real NATS, with the policy
// service running in this process and the ledger stand-in of services/policy/test/world.ts.
// The connection is injected (the test world's keys and directory instead of a key store).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command, CommanderError } from 'commander';
import { createBulwarkClient } from '@bulwark/client';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { createPolicyAdminCommand, type AdminConnectOptions } from '../libs/cli/src/commands/policy-admin.js';
import type { CommandIO } from '../libs/cli/src/io.js';
import { ADMIN, AGENT, harness, provider, silentReporter, type Harness } from '../services/policy/test/world.js';

const SEED = `// the seed's data access policy
policy secure_data_access {
    allow: read(sensitive_data) if user.clearance >= "secret"
}
`;
const TWO = `policy a { allow: read(x) }
policy b { deny: write(x) }
`;

describe('bulwark policy push | list | rollback', () => {
  let h: Harness;
  let dir: string;
  const connects: AdminConnectOptions[] = [];

  beforeAll(async () => {
    h = await harness();
    await h.start();
    dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-cli-'));
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function bulwark(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: CommandIO = { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, cwd: dir };
    let code = 0;
    const program = new Command('bulwark').exitOverride().configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (err += s) });
    createPolicyAdminCommand({
      connect: async (_io, options) => {
        connects.push(options);
        const bus = await h.connect(options.as);
        const client = createBulwarkClient({ bus, sessions: { provider, self: h.world.identity(options.as), directory: h.world.directory }, rejections: silentReporter(options.as) });
        return { admin: client.policyAdmin, close: () => bus.close() };
      },
    })(program, io, (c) => void (code = c));
    try {
      await program.parseAsync(argv, { from: 'user' });
    } catch (e) {
      if (e instanceof CommanderError) return { code: 2, out, err };
      if (!isBulwarkError(e)) throw e;
      return { code: e instanceof InputError ? 2 : 1, out, err: err + e.message };
    }
    return { code, out, err };
  }

  it('pushes files (register, then update), lists, and rolls back, each through the ledger', async () => {
    writeFileSync(join(dir, 'seed.policy'), SEED);
    writeFileSync(join(dir, 'two.policy'), TWO);
    const first = await bulwark('policy', 'push', 'seed.policy', 'two.policy', '--as', ADMIN);
    expect(first).toMatchObject({ code: 0 });
    expect(first.out).toMatch(/^registered secure_data_access version 1 \(in force, set ledger-\d+\)\nregistered a version 1 .*\nregistered b version 1 /);
    // Comments survive: a one-policy file goes to the ledger as written.
    expect(h.ledger.committed[0]!.details['text']).toBe(SEED);
    expect(connects[0]).toMatchObject({ as: ADMIN });

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
    const agent = createBulwarkClient({ bus: await h.connect(AGENT), sessions: { provider, self: h.world.identity(AGENT), directory: h.world.directory }, rejections: silentReporter(AGENT) });
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
    const refused = await bulwark('policy', 'push', 'seed.policy', '--as', AGENT);
    expect(refused).toMatchObject({ code: 1, err: expect.stringContaining('not a policy administrator') });
  });
});
