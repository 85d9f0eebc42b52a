import { compilePolicySources } from './policy-set.js';
import { PolicyParseError } from './errors.js';
import { createPolicyFuzzer } from './fuzz.js';

export interface FuzzReport {
  readonly inputs: number;
  readonly parsed: number;
  readonly rejected: number;
  readonly evaluations: number;
  /** Inputs that threw anything but a PolicyParseError, or whose evaluation threw. */
  readonly crashes: readonly { readonly index: number; readonly input: string; readonly error: string }[];
  /** Inputs that took longer than the hang limit. */
  readonly hangs: readonly { readonly index: number; readonly input: string; readonly ms: number }[];
  /** Inputs over the limit on a first run, run again (at most twice) to tell a stall from a hang. */
  readonly retried: number;
  /** The slowest input (best of its runs when it was retried), to replay it. */
  readonly slowestMs: number;
  readonly slowest: { readonly index: number; readonly input: string } | null;
  readonly elapsedMs: number;
}

const PROBES: readonly unknown[] = [
  { action: 'read', resource: 'sensitive_data', classes: ['high_memory_operations'], context: { user: { clearance: 'secret', need_to_know: ['x'] }, x: [1, 'a'] } },
  { action: 'export', resource: 'data', context: { data: { contains_pii: true }, xs: [] } },
  { action: 'any', resource: 'any', classes: ['any', 'bulk'] },
];

/**
 * Feeds `count` fuzz inputs to parse + compile, and evaluates every set that compiles
 * against a few requests. A crash is anything but a compiled set or a `PolicyParseError`
 * (or an evaluation that throws); a hang is an input slower than `hangMs`.
 */
export function runPolicyFuzz(options: { count: number; seed: number; hangMs?: number; onProgress?: (done: number) => void }): FuzzReport {
  const fuzzer = createPolicyFuzzer(options.seed);
  const hangMs = options.hangMs ?? 100;
  const crashes: { index: number; input: string; error: string }[] = [];
  const hangs: { index: number; input: string; ms: number }[] = [];
  let parsed = 0;
  let rejected = 0;
  let evaluations = 0;
  let slowestMs = 0;
  let retried = 0;
  let slowest: { index: number; input: string } | null = null;
  const started = performance.now();
  const attempt = (input: string, index: number): number => {
    const t0 = performance.now();
    try {
      const set = compilePolicySources([{ text: input, file: 'fuzz.policy' }]);
      parsed++;
      for (const probe of PROBES) {
        set.evaluate(probe);
        evaluations++;
      }
    } catch (err) {
      if (err instanceof PolicyParseError) rejected++;
      else crashes.push({ index, input, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    }
    return performance.now() - t0;
  };
  for (let index = 0; index < options.count; index++) {
    const input = fuzzer.next();
    let ms = attempt(input, index);
    // A garbage collection or a busy machine can stall one run; an input is a hang only if
    // it is slow every time (the retries are not counted as inputs).
    for (let retry = 0; retry < 2 && ms > hangMs; retry++) {
      const counts = [parsed, rejected, evaluations, crashes.length];
      retried++;
      ms = Math.min(ms, attempt(input, index));
      [parsed, rejected, evaluations] = counts as [number, number, number];
      crashes.length = counts[3] as number;
    }
    if (ms > slowestMs) {
      slowestMs = ms;
      slowest = { index, input };
    }
    if (ms > hangMs) hangs.push({ index, input, ms });
    if (options.onProgress && (index + 1) % 100_000 === 0) options.onProgress(index + 1);
  }
  return { inputs: options.count, parsed, rejected, evaluations, crashes, hangs, retried, slowestMs, slowest, elapsedMs: performance.now() - started };
}
