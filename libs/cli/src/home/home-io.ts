import { existsSync } from 'node:fs';
import type { CommandIO } from '../io.js';
import { keyManagerEnvironment } from './custody.js';
import { homeEnvironment } from './environment.js';
import { HOME_ENV, requireHome, resolveHome } from './home.js';

/**
 * The command's IO with a home's environment: when `--dir` is given or `$SYMBIONT_HOME` set
 * (then the home must exist: silently using other keys would be worse), or when `./.bulwark`
 * is a home, what the caller left unset comes from it (keys, KEK file, root pin, NATS URL,
 * database; see homeEnvironment). Otherwise the IO is unchanged. The key directory is the
 * administrator's, except for `custodian: 'key-manager'` (`bulwark keys backup`, run offline where
 * the key manager's store is): then the key manager's store and KEK, unless the caller named a
 * key directory.
 */
export function withHome(io: CommandIO, dir: string | undefined, custodian: 'admin' | 'key-manager' = 'admin'): CommandIO {
  const chosen = dir !== undefined || Boolean(io.env[HOME_ENV]);
  const home = resolveHome(io.cwd, io.env, dir);
  if (!chosen && !existsSync(home.marker)) return io;
  requireHome(home);
  const env = homeEnvironment(home, io.env);
  return { ...io, env: custodian === 'key-manager' && !io.env['SYMBIONT_KEY_DIR'] ? keyManagerEnvironment(home, env) : env };
}
