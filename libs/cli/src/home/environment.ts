import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readRootPinFile, ROOT_PIN_FILE } from '@bulwark/keystore';
import type { Home } from './home.js';
import { readRunState } from './state.js';

/** The PGlite URL of a home's embedded database (`<home>/db/<schema>/`). */
export function homeDatabaseUrl(home: Home): string {
  return `pglite:${home.dbDir}`;
}

const set = (env: NodeJS.ProcessEnv, name: string): boolean => env[name] !== undefined && env[name] !== '';

/**
 * The environment a command (or a service) sees for a home: what the caller set stays,
 * what is unset comes from the home. So no command needs a variable copied from another
 * one's output: the key directory (the administrator's, `<home>/admin`), the KEK file, the pinned root (from `root.pub`), the
 * running system's NATS URL (from `run/up.json`) and its database.
 */
export function homeEnvironment(home: Home, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  // The administrator's directory, never the key manager's (issue 12 "Custody").
  if (!set(env, 'SYMBIONT_KEY_DIR')) out['SYMBIONT_KEY_DIR'] = home.adminDir;
  if (!set(env, 'SYMBIONT_KEK') && !set(env, 'SYMBIONT_KEK_FILE') && existsSync(home.kekFile)) out['SYMBIONT_KEK_FILE'] = home.kekFile;
  const pin = join(out['SYMBIONT_KEY_DIR']!, ROOT_PIN_FILE);
  if (!set(env, 'SYMBIONT_ROOT_PUBLIC_KEY') && existsSync(pin)) out['SYMBIONT_ROOT_PUBLIC_KEY'] = readRootPinFile(pin);
  const state = readRunState(home);
  if (!set(env, 'NATS_URL') && state !== undefined) out['NATS_URL'] = state.nats.url;
  if (!set(env, 'DATABASE_URL')) out['DATABASE_URL'] = state?.database.url ?? homeDatabaseUrl(home);
  return out;
}
