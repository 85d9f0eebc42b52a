import { describe, expect, it } from 'vitest';
import { statusTable } from './probe.js';

describe('the status table', () => {
  it("shows a ready service's health note, and why another is not ready", () => {
    const table = statusTable([
      { name: 'sandbox-scheduler', instances: 1, ready: true, reason: '', subjects: ['a', 'b'], metrics: 'http://127.0.0.1:1/metrics', health: { ready: true, note: 'no driver: every schedule is refused' } },
      { name: 'policy', instances: 0, ready: false, reason: 'no instance answers $SRV.INFO.bulwark-policy', subjects: [] },
      { name: 'audit-ledger', instances: 1, ready: true, reason: '', subjects: ['c'], health: { ready: true, size: 3 } },
    ]);
    const lines = table.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^service\s+instances\s+ready\s+subjects\s+metrics$/);
    expect(lines[1]).toMatch(/^sandbox-scheduler\s+1\s+yes \(no driver: every schedule is refused\)\s+2\s+http:\/\/127\.0\.0\.1:1\/metrics$/);
    expect(lines[2]).toMatch(/^policy\s+0\s+no: no instance answers \$SRV\.INFO\.bulwark-policy\s+0\s+-$/);
    expect(lines[3]).toMatch(/^audit-ledger\s+1\s+yes\s+1\s+-$/);
  });
});
