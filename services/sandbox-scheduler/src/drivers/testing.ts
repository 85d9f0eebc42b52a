import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBusyboxRootfs, copyHostBinary, findBusybox } from '../oci/rootfs.js';

/** Whether a runtime binary answers in PATH. */
export function hasBinary(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a real-container test cannot run here, or undefined when it can. Under CI=true nothing is
 * skipped: a missing runtime fails the test instead (CI installs runc, runsc and busybox-static).
 */
export function skipReason(binary: string): string | undefined {
  if (process.env['CI'] === 'true') return undefined;
  if (process.getuid?.() !== 0) return `${binary} tests need root (they create cgroups and namespaces)`;
  if (!hasBinary(binary)) return `${binary} is not installed (apt-get install ${binary === 'runsc' ? 'runsc' : binary})`;
  if (findBusybox() === undefined) return 'busybox-static is not installed (the root filesystem is built from it)';
  return undefined;
}

export interface TestRootfs {
  readonly dir: string;
  readonly rootfs: string;
  cleanup(): void;
}

/** A temp dir holding a busybox rootfs with a setuid-root copy of the host's `id` at /usr/local/bin/suid-id. */
export function makeTestRootfs(): TestRootfs {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-sandbox-'));
  chmodSync(dir, 0o755);
  const rootfs = buildBusyboxRootfs(join(dir, 'rootfs'));
  copyHostBinary(rootfs, '/usr/bin/id', '/usr/local/bin/suid-id');
  chmodSync(join(rootfs, 'usr/local/bin/suid-id'), 0o4755);
  return { dir, rootfs, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Why the docker tests cannot run here, or undefined (under CI=true they always run: CI installs docker.io). */
export function dockerSkipReason(): string | undefined {
  if (process.env['CI'] === 'true') return undefined;
  if (process.getuid?.() !== 0) return 'docker tests need root (they start their own engine)';
  if (!existsSync('/usr/sbin/dockerd') && !existsSync('/usr/bin/dockerd')) return 'docker.io is not installed (apt-get install docker.io)';
  return skipReason('runsc');
}

export interface TestEngine {
  readonly socket: string;
  stop(): Promise<void>;
}

/**
 * A Docker Engine of the test's own: its socket, data root and exec root in `dir`, no bridge,
 * no iptables, no IP forwarding (nothing touches the host network), runsc registered as a runtime
 * with gVisor's options.
 */
export async function startTestEngine(dir: string): Promise<TestEngine> {
  const socket = join(dir, 'docker.sock');
  writeFileSync(join(dir, 'daemon.json'), JSON.stringify({ runtimes: { runsc: { path: 'runsc', runtimeArgs: ['--network=none', '--platform=ptrace'] } } }));
  const tag = `bulwark-${process.pid}`;
  const child = spawn(existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd', [
    '--bridge=none', '--iptables=false', '--ip-forward=false', '--ip-masq=false',
    '-H', `unix://${socket}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'),
    '--config-file', join(dir, 'daemon.json'), '--containerd-namespace', tag, '--containerd-plugins-namespace', `${tag}-plugins`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  const end = Date.now() + 30_000;
  while (!log.includes('API listen on')) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`dockerd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  };
}

/**
 * Host processes that belong to a sandbox: in a cgroup named after it (runc's container, runsc's
 * sandbox) or with its id on the command line (the runtime client, runsc's sandbox and gofer).
 * What `terminate` must leave none of.
 */
export function hostProcessesOf(id: string): { pid: number; state: string; cmdline: string }[] {
  const found: { pid: number; state: string; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const read = (file: string): string => {
      try {
        return readFileSync(`/proc/${entry}/${file}`, 'utf8');
      } catch {
        return '';
      }
    };
    const cmdline = read('cmdline').replace(/\0/g, ' ').trim();
    if (!read('cgroup').includes(`/${id}\n`) && !cmdline.includes(id)) continue;
    const state = /^\d+ \(.*\) (\S)/.exec(read('stat'))?.[1] ?? '?';
    found.push({ pid: Number(entry), state, cmdline });
  }
  return found;
}

/** The cgroup directories of a sandbox under any v1 controller or the v2 tree that still exist. */
export function cgroupDirsOf(parent: string, id: string): string[] {
  const root = '/sys/fs/cgroup';
  const candidates = [join(root, parent, id), ...readdirSync(root).map((c) => join(root, c, parent, id))];
  return candidates.filter((d) => existsSync(d));
}

/** fixtures/nsclone.cc, built static with the host's g++ into the rootfs at /usr/local/bin/nsclone; or why it cannot be. */
export function installNsclone(rootfs: string): string | undefined {
  const source = fileURLToPath(new URL('./fixtures/nsclone.cc', import.meta.url));
  try {
    execFileSync('g++', ['-static', '-O2', '-o', join(rootfs, 'usr/local/bin/nsclone'), source], { stdio: 'pipe', timeout: 60_000 });
    return undefined;
  } catch (e) {
    if (process.env['CI'] === 'true') throw e;
    return `g++ cannot build a static test binary here: ${(e as Error).message.split('\n')[0] ?? ''}`;
  }
}
