import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function bulwark(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: dir };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

const LINE = /^([a-z_]+\.[a-z_]+) = (.+) {2}\((default|file:.+|env:[A-Z_]+)\)$/;

describe('bulwark config', () => {
  it('prints every value with its source, one per line', async () => {
    const { code, stdout, stderr } = await bulwark(['config'], { SYMBIONT_DEFAULT_SANDBOX_TIER: 'docker' });
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(44);
    for (const line of lines) expect(line).toMatch(LINE);
    expect(lines).toContain('security.crypto_provider = "auto"  (default)');
    expect(lines).toContain('security.default_sandbox_tier = "docker"  (env:SYMBIONT_DEFAULT_SANDBOX_TIER)');
    expect(lines).toContain('security.audit_retention_days = 2190  (default)');
    expect(lines).toContain('security.emergency_override_enabled = false  (default)');
    expect(lines).toContain('database.url = (unset)  (default)');
  });

  it('prints the same with `show`, and JSON with --json', async () => {
    const path = join(dir, 'site.toml');
    writeFileSync(path, '[tofu]\ntrust_on_first_use_timeout_hours = 12\n');
    const plain = await bulwark(['config', '--file', path]);
    expect((await bulwark(['config', 'show', '--file', path])).stdout).toBe(plain.stdout);

    const { code, stdout } = await bulwark(['config', 'show', '--json', '--file', path], { DATABASE_URL: 'postgres://app:pw@db/bulwark' });
    expect(code).toBe(0);
    const json = JSON.parse(stdout) as Record<string, { value: unknown; source: string }>;
    expect(Object.keys(json)).toHaveLength(44);
    expect(json['tofu.trust_on_first_use_timeout_hours']).toEqual({ value: 12, source: `file:${path}` });
    expect(json['security.policy_enforcement_mode']).toEqual({ value: 'strict', source: 'default' });
    expect(json['database.url']).toEqual({ value: 'postgres://app:***@db/bulwark', source: 'env:DATABASE_URL' });
    expect((await bulwark(['config', '--json'])).stdout).toContain('"database.url": {\n    "value": null');
  });

  it('reads ./bulwark.toml from the working directory', async () => {
    writeFileSync(join(dir, 'bulwark.toml'), '[log]\nlevel = "warn"\n');
    const { stdout } = await bulwark(['config']);
    expect(stdout).toContain(`log.level = "warn"  (file:${join(dir, 'bulwark.toml')})`);
  });

  it('exits 2 with one line on stderr for a bad environment variable', async () => {
    const { code, stdout, stderr } = await bulwark(['config'], { SYMBIONT_CRYPTO_PROVIDER: 'rsa' });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe("bulwark: SYMBIONT_CRYPTO_PROVIDER='rsa' is not allowed; expected one of: auto, sodium, node, noble\n");
  });

  it('exits 2 with one line on stderr for an unknown TOML key', async () => {
    const path = join(dir, 'bad.toml');
    writeFileSync(path, '[security]\ncrypto_provider = "noble"\naudit_enabeld = false\n');
    const { code, stderr } = await bulwark(['config', '--file', path]);
    expect(code).toBe(2);
    expect(stderr).toBe(`bulwark: ${path}:3: unknown key security.audit_enabeld; did you mean security.audit_enabled?\n`);
  });

  it('exits 2 when the named file does not exist', async () => {
    const { code, stderr } = await bulwark(['config', '--file', 'nowhere.toml']);
    expect(code).toBe(2);
    expect(stderr).toBe(`bulwark: config file ${join(dir, 'nowhere.toml')} does not exist\n`);
  });
});

describe('bulwark config as a process', () => {
  const bin = join(repoRoot, 'libs/cli/dist/bin.js');

  beforeAll(() => {
    // The binary runs the build output; tsc -b is incremental, so this is quick when it is current.
    execFileSync('npx', ['tsc', '-b', 'libs/cli'], { cwd: repoRoot, stdio: 'pipe' });
  }, 120_000);

  function spawnBulwark(env: Record<string, string>): ReturnType<typeof spawnSync> {
    return spawnSync(process.execPath, [bin, 'config'], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  }

  it('exits 0 and prints the configuration', () => {
    const result = spawnBulwark({ SYMBIONT_TOFU_ENABLED: 'false' });
    expect(result.status).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('tofu.enabled = false  (env:SYMBIONT_TOFU_ENABLED)\n');
  });

  it('exits 2 with a single stderr line and no stack trace for a bad value', () => {
    const result = spawnBulwark({ SYMBIONT_AUDIT_RETENTION_DAYS: 'forever' });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe("bulwark: SYMBIONT_AUDIT_RETENTION_DAYS='forever' is not allowed; expected an integer from 1 to 36500\n");
  });
});
