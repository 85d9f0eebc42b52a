import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SandboxUnavailableError } from '../errors.js';

/** Where Debian's busybox-static puts its binary. */
export const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox'];

export function findBusybox(): string | undefined {
  return BUSYBOX_PATHS.find((p) => existsSync(p) && isStatic(p));
}

function isStatic(path: string): boolean {
  try {
    // A dynamically linked busybox would need the host's libc inside the rootfs.
    return execFileSync('ldd', [path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('not a dynamic');
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '').includes('not a dynamic') || String((e as { stderr?: string }).stderr ?? '').includes('not a dynamic');
  }
}

/**
 * A minimal root filesystem from busybox-static (no image pull is possible here): /bin with the
 * busybox applets, empty /proc, /dev, /sys, /tmp mount points, and /home/sandbox owned by the
 * sandbox user (so that a read-only root, not file ownership, is what stops writes there).
 */
export function buildBusyboxRootfs(dir: string, options: { owner?: { uid: number; gid: number } } = {}): string {
  const busybox = findBusybox();
  if (busybox === undefined) {
    throw new SandboxUnavailableError('E_SANDBOX_NO_ROOTFS', 'sandbox: no static busybox (/bin/busybox from busybox-static) to build a root filesystem from', {});
  }
  const owner = options.owner ?? { uid: 65534, gid: 65534 };
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'home/sandbox', 'run']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[a-z0-9_.-]+$/.test(a) && a !== 'busybox');
  for (const applet of applets) {
    const target = join(dir, 'bin', applet);
    if (!existsSync(target)) symlinkSync('busybox', target);
  }
  chownSync(join(dir, 'home/sandbox'), owner.uid, owner.gid);
  chmodSync(join(dir, 'tmp'), 0o1777);
  return dir;
}

/**
 * Copies a dynamically linked host binary and the libraries `ldd` names into the rootfs
 * (used by tests to place a setuid-root `id` there).
 */
export function copyHostBinary(rootfs: string, binary: string, destination: string): void {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const m = /(\/\S+) \(0x/.exec(line);
    if (m?.[1] === undefined) continue;
    const lib = m[1];
    mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
    if (!existsSync(join(rootfs, lib))) copyFileSync(lib, join(rootfs, lib));
  }
  mkdirSync(join(rootfs, dirname(destination)), { recursive: true });
  copyFileSync(binary, join(rootfs, destination));
}
