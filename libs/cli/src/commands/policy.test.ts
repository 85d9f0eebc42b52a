import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';
import { createPolicyCommand } from './policy.js';

const examples = fileURLToPath(new URL('../../../policy-language/examples/', import.meta.url));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-policy-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function capture(): { io: CommandIO; out: { stdout: string; stderr: string } } {
  const out = { stdout: '', stderr: '' };
  const io: CommandIO = { stdout: (s) => void (out.stdout += s), stderr: (s) => void (out.stderr += s), env: {}, cwd: dir };
  return { io, out };
}

async function bulwark(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { io, out } = capture();
  const code = await run(argv, io);
  return { code, ...out };
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const cleared = {
  action: 'read',
  resource: 'sensitive_data',
  context: {
    user: { clearance: 'secret', need_to_know: ['pii'], background_check: { current: true } },
    session: { mfa_verified: true, secure_connection: true },
    data: { classification: 'pii' },
  },
};

describe('bulwark policy check', () => {
  it('accepts the seed policies', async () => {
    expect(await bulwark('policy', 'check', examples)).toEqual({ code: 0, stdout: 'ok: 3 policies, 9 rules in 1 file(s)\n', stderr: '' });
  });

  it('prints file:line:col errors for every bad file and exits 1', async () => {
    write('bad.policy', 'policy p {\n  allow: read(x) if user.level >=\n}\n');
    write('worse.policy', 'policy q { deny export(data) }');
    const result = await bulwark('policy', 'check', 'bad.policy', 'worse.policy');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("bad.policy:3:1: expected an expression, found '}'\nworse.policy:1:17: expected ':', found identifier 'export'\n");
  });

  it('finds a policy name used in two files and a level that does not exist', async () => {
    write('a.policy', 'policy p { allow: any }');
    write('b.policy', 'policy p { deny: any }');
    expect((await bulwark('policy', 'check', 'a.policy', 'b.policy')).stderr).toMatch(/^b\.policy:1:8: expected a policy name not used before/);
    write('c.policy', 'policy c { allow: any if user.clearance >= "green" }');
    expect(await bulwark('policy', 'check', 'c.policy', '--levels', 'green,amber,red')).toMatchObject({ code: 0 });
    expect(await bulwark('policy', 'check', 'c.policy')).toMatchObject({ code: 1 });
  });
});

describe('bulwark policy eval', () => {
  it('prints the decision as one JSON object and exits 0 for an allow', async () => {
    write('request.json', JSON.stringify(cleared));
    const result = await bulwark('policy', 'eval', '--policies', examples, '--request', 'request.json');
    expect(result.code).toBe(0);
    expect(result.stdout.endsWith('\n')).toBe(true);
    expect(JSON.parse(result.stdout)).toMatchObject({
      decision: 'AllowWithConditions',
      conditions: [{ name: 'audit_trail', value: 'detailed' }],
      policy: 'secure_data_access',
      version: 1,
      rule: 1,
      ruleText: 'allow read(sensitive_data)',
    });
  });

  it('exits 1 for a deny and for a decision that needs approval', async () => {
    write('export.json', JSON.stringify({ action: 'export', resource: 'data', context: { data: { contains_pii: true } } }));
    const deny = await bulwark('policy', 'eval', '--policies', examples, '--request', 'export.json');
    expect(deny.code).toBe(1);
    expect(JSON.parse(deny.stdout)).toMatchObject({ decision: 'Deny', reason: 'denied by policy secure_data_access rule 2 (deny export(data))' });
    write('memory.json', JSON.stringify({ ...cleared, classes: ['high_memory_operations'] }));
    const approval = await bulwark('policy', 'eval', '--policies', examples, '--request', 'memory.json');
    expect(approval.code).toBe(1);
    expect(JSON.parse(approval.stdout)).toMatchObject({ decision: 'RequireApproval', approver: 'supervisor' });
  });

  it('exits 2 with one line for a request that is not JSON or not a request, and for bad policies', async () => {
    write('broken.json', '{"action": ');
    const broken = await bulwark('policy', 'eval', '--policies', examples, '--request', 'broken.json');
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/^bulwark: request broken\.json: not JSON \(.+\)\n$/);
    write('shape.json', '{"resource": "x"}');
    expect(await bulwark('policy', 'eval', '--policies', examples, '--request', 'shape.json')).toEqual({
      code: 2,
      stdout: '',
      stderr: 'bulwark: request shape.json: action must be a string\n',
    });
    write('bad.policy', 'policy p { allow }');
    const bad = await bulwark('policy', 'eval', '--policies', 'bad.policy', '--request', 'shape.json');
    expect(bad).toMatchObject({ code: 2, stderr: "bulwark: bad.policy:1:18: expected ':', found '}'\n" });
    expect((await bulwark('policy', 'eval', '--policies', 'missing', '--request', 'shape.json')).code).toBe(2);
  });

  it("reads the request from standard input with '-'", async () => {
    const { io, out } = capture();
    let exit = -1;
    const program = new Command().exitOverride();
    createPolicyCommand({ readStdin: async () => JSON.stringify(cleared) })(program, io, (code) => {
      exit = code;
    });
    await program.parseAsync(['policy', 'eval', '--policies', examples, '--request', '-'], { from: 'user' });
    expect(exit).toBe(0);
    expect(JSON.parse(out.stdout).decision).toBe('AllowWithConditions');
  });
});

describe('bulwark policy test', () => {
  it('runs the seed table and prints a summary', async () => {
    const result = await bulwark('policy', 'test', examples);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^PASS .*seed\.test\.json › cleared analyst/m);
    expect(result.stdout).toMatch(/\n52 passed, 0 failed, 52 total\n$/);
  });

  it('prints what differs for a failing case and exits 1', async () => {
    write('p.policy', 'policy p { allow: read(file) }');
    write(
      'p.test.json',
      JSON.stringify({
        cases: [
          { name: 'reads', request: { action: 'read', resource: 'file' }, expect: { decision: 'Allow', policy: 'p', rule: 1 } },
          { name: 'writes', request: { action: 'write', resource: 'file' }, expect: { decision: 'Allow' } },
        ],
      }),
    );
    const result = await bulwark('policy', 'test', '.');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe(
      'PASS p.test.json › reads\nFAIL p.test.json › writes: decision: expected "Allow", got "Deny"\n1 passed, 1 failed, 2 total\n',
    );
  });

  it('refuses a test file with an unknown expectation (exit 2)', async () => {
    write('p.policy', 'policy p { allow: any }');
    write('p.test.json', JSON.stringify({ cases: [{ name: 'x', request: {}, expect: { decison: 'Allow' } }] }));
    const result = await bulwark('policy', 'test', '.');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^bulwark: policy test file p\.test\.json: case 1 \(x\): unknown expectation "decison"/);
  });
});
