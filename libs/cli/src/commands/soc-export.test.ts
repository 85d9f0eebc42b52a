import { describe, expect, it } from 'vitest';
import { run } from '../main.js';
import { parseTimeArg } from './soc-export.js';

describe('soc export times', () => {
  const now = Date.parse('2026-12-02T06:00:00Z');
  it('takes an ISO 8601 time or a duration back from now', () => {
    expect(parseTimeArg('--since', '24h', now)).toBe(now - 24 * 3_600_000);
    expect(parseTimeArg('--since', '30m', now)).toBe(now - 30 * 60_000);
    expect(parseTimeArg('--since', '7d', now)).toBe(now - 7 * 86_400_000);
    expect(parseTimeArg('--since', '2026-12-01T12:00:00Z', now)).toBe(Date.parse('2026-12-01T12:00:00Z'));
    expect(parseTimeArg('--until', '2026-12-01', now)).toBe(Date.parse('2026-12-01'));
  });

  it('refuses anything else with the flag and what it takes', () => {
    for (const bad of ['yesterday', '24', '-1h', '24 hours', '1700000000000', '2026-13-45T99:99:99Z', '']) {
      expect(() => parseTimeArg('--since', bad, now), bad).toThrow(expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(/^--since .*an ISO 8601 time .* or a duration back from now/) }));
    }
  });
});

describe('bulwark soc export', () => {
  const cli = async (argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await run(argv, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: {}, cwd: '/nonexistent' });
    return { code, stdout, stderr };
  };

  it('refuses a bad --since or a reversed range before connecting, exit 2 and one line', async () => {
    const bad = await cli(['soc', 'export', '--since', 'last tuesday', '--as', 'analyst.ann']);
    expect(bad).toEqual({ code: 2, stdout: '', stderr: 'bulwark: --since "last tuesday": an ISO 8601 time (2026-01-31T12:00:00Z) or a duration back from now (30m, 24h, 7d)\n' });
    const reversed = await cli(['soc', 'export', '--since', '1h', '--until', '2h', '--as', 'analyst.ann']);
    expect(reversed.code).toBe(2);
    expect(reversed.stderr).toMatch(/^bulwark: --until \(.*\) must be after --since/);
  });
});
