// What the policy decision benches (`policy-bus`, `policy-bus-auth`) share: their options, the
// policy and request they decide, and the timing of sequential calls.

const args = process.argv.slice(2);

/** `--name N` from the command line, else `fallback`. */
export function option(name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

export const N = option('n', 500);
export const ROUNDS = option('rounds', 6);
// Calls of each impl before measuring: a service answers many requests, so the figures are
// the steady state with every path compiled by the JIT, not the first few hundred calls.
export const WARMUP = option('warmup', 3000);

export const SEED = `policy secure_data_access {
    allow: read(sensitive_data) if (user.clearance >= "secret" && user.need_to_know.contains(data.classification) && session.mfa_verified == true)
    deny: export(data) if data.contains_pii == true
    require: [user.background_check.current, session.secure_connection, audit_trail = "detailed"]
}`;

/** Decided AllowWithConditions by SEED. */
export const REQUEST = {
  action: 'read',
  resource: 'sensitive_data',
  context: {
    user: { clearance: 'secret', need_to_know: ['pii', 'finance'], background_check: { current: true } },
    session: { mfa_verified: true, secure_connection: true },
    data: { classification: 'pii', contains_pii: false },
  },
};

/** One JSON line per figure (DESIGN §11), in µs. */
export function emit(bench: string, figure: string, impl: string, value: number, n: number): void {
  console.log(JSON.stringify({ bench, figure, impl, value: Number(value.toFixed(1)), unit: 'us', n }));
}

export const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

/** Times `n` sequential calls into `samples` (µs). */
export async function time(samples: number[], n: number, call: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
}
