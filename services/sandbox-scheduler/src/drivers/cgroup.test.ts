import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cgroupVersion, readUsage } from './cgroup.js';

/** Directories laid out as each hierarchy is, with files in the kernel's own format. */
const V1 = fileURLToPath(new URL('./fixtures/cgroup-v1', import.meta.url));
const V2 = fileURLToPath(new URL('./fixtures/cgroup-v2', import.meta.url));

describe('cgroup usage', () => {
  it('tells v2 (cgroup.controllers at the root) from v1', () => {
    expect(cgroupVersion(V2)).toBe(2);
    expect(cgroupVersion(V1)).toBe(1);
  });

  it('reads v2: memory.max/current/peak, memory.events (max, oom_kill), cpu.stat usage_usec, pids.max/current/events', () => {
    expect(readUsage('/bulwark/sbx-1', V2)).toEqual({
      memoryLimitBytes: 67108864,
      memoryCurrentBytes: 66977792,
      memoryPeakBytes: 67108864,
      memoryFailCount: 1043,
      oomKills: 1,
      cpuNs: 503116000,
      pidsCurrent: 3,
      pidsLimit: 16,
      pidsRefused: 44,
    });
  });

  it('reads v2 before Linux 5.19 (no memory.peak) and "max" limits as no limit, never as a number', () => {
    expect(readUsage('bulwark/sbx-old', V2)).toEqual({ memoryCurrentBytes: 1048576, memoryFailCount: 0, oomKills: 0, cpuNs: 1200000, pidsRefused: 0 });
  });

  it('reads v1: memory.limit_in_bytes, failcnt, oom_control oom_kill, cpuacct.usage, pids.max and pids.events', () => {
    expect(readUsage('/bulwark/sbx-1', V1)).toEqual({
      memoryLimitBytes: 67108864,
      memoryCurrentBytes: 0,
      memoryPeakBytes: 67108864,
      memoryFailCount: 2197,
      oomKills: 1,
      cpuNs: 503116000,
      pidsCurrent: 0,
      pidsLimit: 16,
      pidsRefused: 44,
    });
  });

  it('reads a missing cgroup as nothing known (absent, not zero)', () => {
    expect(readUsage('/bulwark/none', V2)).toEqual({});
    expect(readUsage('/bulwark/none', V1)).toEqual({});
  });
});
