import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
