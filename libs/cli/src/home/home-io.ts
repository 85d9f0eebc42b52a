import { existsSync } from 'node:fs';
import type { CommandIO } from '../io.js';
import { homeEnvironment } from './environment.js';
import { HOME_ENV, requireHome, resolveHome } from './home.js';

/**
 * The command's IO with a home's environment: when `--dir` is given or `$SYMBIONT_HOME` set
 * (then the home must exist: silently using other keys would be worse), or when `./.bulwark`
 * is a home, what the caller left unset comes from it (keys, KEK file, root pin, NATS URL,
 * database; see homeEnvironment). Otherwise the IO is unchanged.
 */
export function withHome(io: CommandIO, dir: string | undefined): CommandIO {
  const chosen = dir !== undefined || Boolean(io.env[HOME_ENV]);
  const home = resolveHome(io.cwd, io.env, dir);
  if (!chosen && !existsSync(home.marker)) return io;
  requireHome(home);
  return { ...io, env: homeEnvironment(home, io.env) };
}
