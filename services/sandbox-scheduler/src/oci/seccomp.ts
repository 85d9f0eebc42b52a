import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SandboxInputError } from '../errors.js';

/** The OCI runtime spec's `linux.seccomp` (runtime-spec config-linux.md § Seccomp). */
export interface SeccompProfile {
  readonly defaultAction: string;
  readonly defaultErrnoRet?: number;
  readonly architectures: readonly string[];
  readonly syscalls: readonly {
    readonly names: readonly string[];
    readonly action: string;
    readonly errnoRet?: number;
    readonly args?: readonly { readonly index: number; readonly value: number; readonly valueTwo?: number; readonly op: string }[];
  }[];
}

/** `deploy/seccomp/default.json` in the repository (two levels above this package's src/ or dist/). */
export const DEFAULT_SECCOMP_PATH = fileURLToPath(new URL('../../../../deploy/seccomp/default.json', import.meta.url));

let cached: SeccompProfile | undefined;

/**
 * The default profile: deny by default (EPERM), an allowlist of ordinary syscalls; no
 * unshare/setns/mount/keyctl/add_key/request_key/bpf/ptrace/perf_event_open/kexec/module
 * loading; clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone.
 */
export function defaultSeccompProfile(path: string = DEFAULT_SECCOMP_PATH): SeccompProfile {
  if (path === DEFAULT_SECCOMP_PATH && cached !== undefined) return cached;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new SandboxInputError('E_SANDBOX_SECCOMP', `sandbox: cannot read the seccomp profile ${path}: ${(e as Error).message}`, { path });
  }
  const profile = parsed as SeccompProfile;
  if (typeof profile.defaultAction !== 'string' || !Array.isArray(profile.syscalls) || !Array.isArray(profile.architectures)) {
    throw new SandboxInputError('E_SANDBOX_SECCOMP', `sandbox: ${path} is not an OCI seccomp profile (defaultAction, architectures, syscalls)`, { path });
  }
  if (profile.defaultAction === 'SCMP_ACT_ALLOW') {
    throw new SandboxInputError('E_SANDBOX_SECCOMP', `sandbox: ${path} allows every syscall by default; the profile must deny by default`, { path });
  }
  if (path === DEFAULT_SECCOMP_PATH) cached = profile;
  return profile;
}
