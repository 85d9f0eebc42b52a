import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxUsage } from './types.js';

const ROOT = '/sys/fs/cgroup';

/** cgroup v2 (unified) when the root itself lists controllers; otherwise v1 (or hybrid). */
export function cgroupVersion(root = ROOT): 1 | 2 {
  return existsSync(join(root, 'cgroup.controllers')) ? 2 : 1;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const text = readText(path)?.trim();
  if (text === undefined || text === '' || text === 'max') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function field(text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/**
 * Reads the usage of one cgroup path (the spec's `cgroupsPath`) under v1 (memory, cpuacct, pids
 * hierarchies) or v2 (one unified directory). Missing files read as absent, never as zero; a
 * limit of `max` (none) reads as absent too.
 */
export function readUsage(cgroupsPath: string, root = ROOT): SandboxUsage {
  const rel = cgroupsPath.replace(/^\/+/, '');
  const usage: { -readonly [K in keyof SandboxUsage]: SandboxUsage[K] } = {};
  if (cgroupVersion(root) === 2) {
    const dir = join(root, rel);
    usage.memoryLimitBytes = readNumber(join(dir, 'memory.max'));
    // memory.peak exists from Linux 5.19; memory.current is the only figure before.
    usage.memoryCurrentBytes = readNumber(join(dir, 'memory.current'));
    usage.memoryPeakBytes = readNumber(join(dir, 'memory.peak'));
    const events = readText(join(dir, 'memory.events'));
    usage.oomKills = field(events, 'oom_kill');
    usage.memoryFailCount = field(events, 'max');
    usage.cpuNs = mul(field(readText(join(dir, 'cpu.stat')), 'usage_usec'), 1000);
    usage.pidsCurrent = readNumber(join(dir, 'pids.current'));
    usage.pidsLimit = readNumber(join(dir, 'pids.max'));
    usage.pidsRefused = field(readText(join(dir, 'pids.events')), 'max');
  } else {
    const mem = join(root, 'memory', rel);
    usage.memoryLimitBytes = readNumber(join(mem, 'memory.limit_in_bytes'));
    usage.memoryCurrentBytes = readNumber(join(mem, 'memory.usage_in_bytes'));
    usage.memoryPeakBytes = readNumber(join(mem, 'memory.max_usage_in_bytes'));
    usage.memoryFailCount = readNumber(join(mem, 'memory.failcnt'));
    usage.oomKills = field(readText(join(mem, 'memory.oom_control')), 'oom_kill');
    usage.cpuNs = readNumber(join(root, 'cpuacct', rel, 'cpuacct.usage'));
    const pids = join(root, 'pids', rel);
    usage.pidsCurrent = readNumber(join(pids, 'pids.current'));
    usage.pidsLimit = readNumber(join(pids, 'pids.max'));
    usage.pidsRefused = field(readText(join(pids, 'pids.events')), 'max');
  }
  return Object.fromEntries(Object.entries(usage).filter(([, v]) => v !== undefined)) as SandboxUsage;
}

function mul(n: number | undefined, k: number): number | undefined {
  return n === undefined ? undefined : n * k;
}
