import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatRootPin } from '@bulwark/keystore';
import { homeEnvironment } from './environment.js';
import { checkHome, ensureHome, homeAt, resolveHome } from './home.js';
import { writeRunState, type RunState } from './state.js';

const scratch = mkdtempSync(join(tmpdir(), 'bulwark-home-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the home', () => {
  it('is --dir, else $SYMBIONT_HOME, else ./.bulwark', () => {
    expect(resolveHome('/w', { SYMBIONT_HOME: '/h' }, 'd').dir).toBe('/w/d');
    expect(resolveHome('/w', { SYMBIONT_HOME: '/h' }, undefined).dir).toBe('/h');
    expect(resolveHome('/w', { SYMBIONT_HOME: '' }, undefined).dir).toBe('/w/.bulwark');
  });

  it('is created in an absent or empty directory, and refused in a foreign or corrupt one', () => {
    const home = homeAt(join(scratch, 'a'));
    expect(checkHome(home)).toBe('absent');
    expect(ensureHome(home)).toEqual({ created: true });
    expect(checkHome(home)).toBe('home');
    expect(ensureHome(home)).toEqual({ created: false });
    const foreign = homeAt(join(scratch, 'b'));
    mkdirSync(foreign.dir);
    writeFileSync(join(foreign.dir, 'x'), '');
    expect(() => ensureHome(foreign)).toThrow(/is not a Bulwark home \(no bulwark-home\.json\) and is not empty/);
    const other = homeAt(join(scratch, 'c'));
    mkdirSync(other.dir);
    writeFileSync(other.marker, '{"format":"something-else"}');
    expect(() => checkHome(other)).toThrow(/format "something-else" is not bulwark-home\/v1/);
  });

  it("fills what the caller left unset: the administrator's keys (never the key manager's), KEK file, root pin, the running NATS URL, the database", () => {
    const home = homeAt(join(scratch, 'd'));
    ensureHome(home);
    mkdirSync(home.adminDir);
    const key = new Uint8Array(32).fill(9);
    writeFileSync(join(home.adminDir, 'root.pub'), formatRootPin(key));
    writeFileSync(home.kekFile, 'x', { mode: 0o600 });
    const state: RunState = { format: 'bulwark-up/v1', pid: 1, started: '', nats: { url: 'nats://127.0.0.1:4999', managed: true }, database: { kind: 'pglite', url: `pglite:${home.dbDir}` }, admin: 'analyst.admin', services: [] };
    writeRunState(home, state);
    expect(homeEnvironment(home, {})).toMatchObject({
      SYMBIONT_KEY_DIR: home.adminDir,
      SYMBIONT_KEK_FILE: home.kekFile,
      SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(key).toString('base64'),
      NATS_URL: 'nats://127.0.0.1:4999',
      DATABASE_URL: `pglite:${home.dbDir}`,
    });
    // The caller's own values win; a KEK in the environment means no KEK file from the home.
    const mine = homeEnvironment(home, { NATS_URL: 'nats://elsewhere:4222', SYMBIONT_KEK: 'k', DATABASE_URL: 'postgres://db/x' });
    expect(mine).toMatchObject({ NATS_URL: 'nats://elsewhere:4222', DATABASE_URL: 'postgres://db/x' });
    expect(mine['SYMBIONT_KEK_FILE']).toBeUndefined();
  });
});
