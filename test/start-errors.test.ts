// `bulwark up` on bad input: a busy port, a missing nats-server, a wrong KEK, a corrupt or
// foreign home directory, a service that exits at once. Each: one clear line, a non-zero
// exit, nothing overwritten, no process left behind. (Its own nats-server and PGlite, as in
// start.test.ts: never the machine's shared servers.)
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive } from '../libs/cli/src/home/state.js';
import { isolatedEnv, runBulwark, type CliResult } from './bulwark-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'bulwark-start-errors-'));
let n = 0;
const freshDir = () => join(scratch, `home${n++}`);

interface Result extends CliResult {
  /** Every pid that `<home>/run/up.json` named while the command ran. */
  pids: number[];
}

/** Runs `bulwark <args>`, watching `<home>/run/up.json` for the processes it starts. */
async function bulwark(args: string[], env: NodeJS.ProcessEnv, home?: string): Promise<Result> {
  const pids = new Set<number>();
  const watch = setInterval(() => {
    if (home === undefined) return;
    try {
      const state = JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as { pid: number; nats: { pid?: number }; services: { pid?: number }[] };
      for (const pid of [state.pid, state.nats.pid, ...state.services.map((s) => s.pid)]) if (pid !== undefined) pids.add(pid);
    } catch {
      // Not written yet, or being replaced.
    }
  }, 50);
  const result = await runBulwark(args, { cwd: scratch, env, timeoutMs: 120_000 });
  clearInterval(watch);
  return { ...result, pids: [...pids] };
}

/** One line on stderr starting `bulwark:` (warnings of `bulwark up` before it are allowed), naming `what`. */
function expectOneLine(r: Result, what: RegExp): void {
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('bulwark: '));
  expect(errors, r.stderr).toHaveLength(1);
  expect(errors[0]).toMatch(what);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A fingerprint of every file under a directory (path, size, mode, content hash). */
function fingerprint(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else out.push(`${path} ${st.size} ${st.mode} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    }
  };
  walk(dir);
  return out.join('\n');
}

/** A home with keys (as `bulwark up` leaves one after its first run), without starting anything. */
async function initialisedHome(): Promise<string> {
  const home = freshDir();
  // An empty PATH for nats-server: up creates the home and the KEK, then stops at NATS.
  const first = await bulwark(['up', '--dir', home], isolatedEnv({ PATH: dirname(process.execPath) }), home);
  expect(first.code).toBe(2);
  // The key manager's store, under the key manager's KEK (what up's init makes).
  const init = await bulwark(['init', '--dir', join(home, 'key-manager', 'keys'), '--nats', 'nats://127.0.0.1:1', '--json'], isolatedEnv({ SYMBIONT_KEK_FILE: join(home, 'key-manager', 'kek') }));
  expect(init.code, init.stderr).toBe(1); // keys written, the directory not published (no server)
  expect(existsSync(join(home, 'key-manager', 'keys', 'root.pub'))).toBe(true);
  return home;
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('bulwark up on bad input', () => {
  it('a busy --nats-port: one line, exit 2, nothing started', async () => {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const home = freshDir();
    try {
      const r = await bulwark(['up', '--dir', home, '--nats-port', String(port)], isolatedEnv(), home);
      expect(r.code).toBe(2);
      expectOneLine(r, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
      expect(r.pids.filter((p) => p !== undefined && isAlive(p))).toEqual([]);
      expect(existsSync(join(home, 'key-manager', 'keys'))).toBe(false);
    } finally {
      server.close();
    }
  });

  it('no nats-server in PATH: one line saying how to install it, exit 2', async () => {
    const home = freshDir();
    const r = await bulwark(['up', '--dir', home], isolatedEnv({ PATH: dirname(process.execPath) }), home);
    expect(r.code).toBe(2);
    expectOneLine(r, /no nats-server in PATH.*apt-get install nats-server.*brew install nats-server.*docker compose/);
  });

  it("a wrong key manager KEK: one line naming the key file, exit 1, the keys untouched, nothing started", async () => {
    const home = await initialisedHome();
    const before = fingerprint(join(home, 'key-manager', 'keys'));
    const wrong = join(home, 'wrong.kek');
    writeFileSync(wrong, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 });
    const r = await bulwark(['up', '--dir', home], isolatedEnv({ SYMBIONT_KEY_MANAGER_KEK_FILE: wrong }), home);
    expect(r.code).toBe(1);
    expectOneLine(r, /key file .*key-manager\/keys\/root\.ed25519\.v1\.json does not open with the key-encryption key from SYMBIONT_KEK_FILE .*wrong\.kek: wrong KEK/);
    expect(fingerprint(join(home, 'key-manager', 'keys'))).toBe(before);
    expect(r.pids.filter(isAlive)).toEqual([]);
  });

  it('a corrupt home marker and a foreign directory: one line each, nothing written', async () => {
    const corrupt = freshDir();
    mkdirSync(corrupt);
    writeFileSync(join(corrupt, 'bulwark-home.json'), '{ not json');
    const r1 = await bulwark(['up', '--dir', corrupt], isolatedEnv(), corrupt);
    expect(r1.code).toBe(1);
    expectOneLine(r1, /bulwark-home\.json is corrupt/);
    expect(readdirSync(corrupt)).toEqual(['bulwark-home.json']);

    const foreign = freshDir();
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    const r2 = await bulwark(['up', '--dir', foreign], isolatedEnv(), foreign);
    expect(r2.code).toBe(2);
    expectOneLine(r2, /is not a Bulwark home .* and is not empty/);
    expect(readdirSync(foreign)).toEqual(['notes.txt']);

    const status = await bulwark(['status', '--dir', corrupt], isolatedEnv());
    expect(status.code).toBe(1);
    expectOneLine(status, /corrupt/);
  });

  it('a service that exits at once: one line naming it and its last words, exit 1, no process left', { timeout: 150_000 }, async () => {
    const home = freshDir();
    // A bad ledger setting: the audit-ledger process exits with its one-line error at start.
    const r = await bulwark(['up', '--dir', home], isolatedEnv({ SYMBIONT_LEDGER_BATCH_EVENTS: 'many' }), home);
    expect(r.code).toBe(1);
    expectOneLine(r, /audit-ledger exited at start \(code 2: .*SYMBIONT_LEDGER_BATCH_EVENTS.*\); log .*audit-ledger\.log/);
    expect(r.pids.length).toBeGreaterThanOrEqual(3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.pids.filter(isAlive)).toEqual([]);
    expect(existsSync(join(home, 'run', 'up.json'))).toBe(false);
  });
});
