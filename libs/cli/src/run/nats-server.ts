import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { connectBus } from '@bulwark/bus';
import { BulwarkError, isBulwarkError } from '@bulwark/errors';
import { lastLine } from './log-files.js';

export const NATS_INSTALL_HINT =
  'install it (Debian/Ubuntu: apt-get install nats-server; macOS: brew install nats-server), or run NATS with `docker compose up -d nats` and set NATS_URL=nats://127.0.0.1:4222';

/** `nats-server` from PATH, or undefined. */
export function findNatsServer(env: NodeJS.ProcessEnv): string | undefined {
  return findInPath(env, 'nats-server');
}

/** An executable `name` in PATH, or undefined. */
function findInPath(env: NodeJS.ProcessEnv, name: string): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

export interface RunningNats {
  readonly url: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The command that runs nats-server so that it ends with `bulwark up`, however `up` ends: on
 * Linux, util-linux's `setpriv --pdeathsig TERM` (the kernel's PR_SET_PDEATHSIG, then exec: the
 * same pid) when it is installed; elsewhere nats-server itself, which a SIGKILLed `up` leaves
 * running (the services still stop themselves: @bulwark/service-host's supervisor watch).
 */
export function natsServerCommand(env: NodeJS.ProcessEnv, binary: string, args: readonly string[]): { command: string; args: string[] } {
  const setpriv = process.platform === 'linux' ? findInPath(env, 'setpriv') : undefined;
  return setpriv === undefined ? { command: binary, args: [...args] } : { command: setpriv, args: ['--pdeathsig', 'TERM', '--', binary, ...args] };
}

/**
 * Starts nats-server in its own process group (Ctrl-C reaches `bulwark up` only, which stops
 * it last, after the services have drained), ending with `up` where the host allows
 * (natsServerCommand), and waits until a client can connect and use JetStream. A server that
 * exits first fails with the last line of its log.
 */
export async function startNatsServer(binary: string, config: { configFile: string; url: string }, logFile: string, timeoutMs = 15_000, env: NodeJS.ProcessEnv = process.env): Promise<RunningNats> {
  const fd = openSync(logFile, 'a', 0o600);
  const run = natsServerCommand(env, binary, ['-c', config.configFile]);
  const child = spawn(run.command, run.args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  child.once('error', () => undefined);
  // If `bulwark up` ends by an exception, the server it started goes with it.
  const onExit = () => {
    if (exited === undefined) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exit;
    clearTimeout(timer);
    process.off('exit', onExit);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined) {
      throw new BulwarkError('E_NATS_START', `nats-server exited at start (${exited.code ?? exited.signal}): ${lastLine(logFile) ?? 'no output'} (log ${logFile})`, { logFile });
    }
    try {
      const bus = await connectBus({ url: config.url, name: 'bulwark-up-probe', maxReconnectAttempts: 0, connectTimeoutMs: 1000 });
      await bus.close();
      return { url: config.url, process: child, stop };
    } catch (error) {
      // An operator-mode server refuses an anonymous client: it is listening, which is all we wait for.
      if (isBulwarkError(error) && error.code === 'E_BUS_AUTH') return { url: config.url, process: child, stop };
      if (Date.now() > deadline) {
        await stop();
        throw new BulwarkError('E_NATS_START', `nats-server did not accept connections on ${config.url} within ${timeoutMs / 1000} s (log ${logFile})`, { logFile });
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}
