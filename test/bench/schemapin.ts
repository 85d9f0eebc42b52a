// `npm run bench -- schemapin [--rounds N] [--ms M]`: SchemaPin tool verifications per second,
// uncached (checkTool: canonicalize, SHA-256, revocation, pin, ECDSA P-256 verify, content hash)
// and cached (CachedVerifier hit), against node:crypto's bare ECDSA P-256 verify of the same
// signature in the same run; and the latency of a cached hit (p50, p99). JSON lines (README.md).
import { createHash, createPublicKey, verify } from 'node:crypto';
import { CachedVerifier, canonicalizeSchema, checkTool, createWellKnownResponse, generateKeyPair, KeyPinStore, signSchema } from '@bulwark/schemapin';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench schemapin: --${name} needs a positive number, got '${process.argv[at + 1] ?? ''}'`);
    process.exit(2);
  }
  return value;
}
const ROUNDS = option('rounds', 30);
const SAMPLE_MS = option('ms', 50);

// An MCP tool of ordinary size (the filesystem server's search_files).
const tool = {
  name: 'search_files',
  description: 'Recursively search for files and directories matching a pattern. Searches through all subdirectories from the starting path.',
  inputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string', description: 'Start directory', maxLength: 4096 },
      pattern: { type: 'string', description: 'Name pattern', maxLength: 256 },
      excludePatterns: { type: 'array', items: { type: 'string' }, maxItems: 32 },
    },
    required: ['path', 'pattern'],
  },
  annotations: { readOnlyHint: true },
};
const { privateKeyPem, publicKeyPem } = generateKeyPair();
const signed = signSchema(tool, privateKeyPem);
const discovery = createWellKnownResponse(publicKeyPem, 'Bench Tools', undefined, [`sha256:${'0'.repeat(64)}`]);
const input = { toolId: 'search_files', domain: 'bench.example', signed: { schema: signed.schema, signature: signed.signature }, discovery, revocation: null };
const pins = new KeyPinStore();
const first = checkTool(pins, input);
if (first.verdict !== 'Trusted' || first.newPin === null) throw new Error(`bench schemapin: setup verification failed: ${first.verdict}`);
pins.set(input.toolId, input.domain, first.newPin);

const rawKey = createPublicKey(publicKeyPem);
const rawDigest = createHash('sha256').update(canonicalizeSchema(tool), 'utf8').digest();
const rawSignature = Buffer.from(signed.signature, 'base64');
const cached = new CachedVerifier();

const ops: Record<string, () => boolean> = {
  'raw:node-crypto': () => verify('sha256', rawDigest, { key: rawKey, dsaEncoding: 'der' }, rawSignature),
  bulwark: () => checkTool(pins, input).verdict === 'Trusted',
  'bulwark:cached': () => cached.check(pins, input).verdict === 'Trusted',
};
for (const op of Object.values(ops)) if (!op()) throw new Error('bench schemapin: an operation did not verify');

/**
 * Interleaved finely: within a round the implementations take turns, 16 calls each, until the
 * round's time is up, so that load from other processes falls on all of them alike (this
 * machine is shared); each round gives one rate per implementation, the value is the median.
 */
function rates(): Record<string, number[]> {
  const impls = Object.entries(ops);
  const out: Record<string, number[]> = Object.fromEntries(impls.map(([k]) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const ns: Record<string, number> = Object.fromEntries(impls.map(([k]) => [k, 0]));
    const calls: Record<string, number> = Object.fromEntries(impls.map(([k]) => [k, 0]));
    const end = process.hrtime.bigint() + BigInt(SAMPLE_MS * impls.length * 1e6);
    while (process.hrtime.bigint() < end) {
      for (const [impl, op] of impls) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < 16; i++) op();
        ns[impl]! += Number(process.hrtime.bigint() - t0);
        calls[impl]! += 16;
      }
    }
    for (const [impl] of impls) out[impl]!.push(calls[impl]! / (ns[impl]! / 1e9));
  }
  return out;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const print = (figure: string, impl: string, value: number, unit: string, n: number): void =>
  console.log(JSON.stringify({ bench: 'schemapin', figure, impl, value: Math.round(value * 10) / 10, unit, n }));

const measured = rates();
// Uncached and raw share the figure name (the same signature verified); the cached figure is its own.
print('verify.uncached', 'raw:node-crypto', median(measured['raw:node-crypto']!), 'ops/s', ROUNDS);
print('verify.uncached', 'bulwark', median(measured.bulwark!), 'ops/s', ROUNDS);
print('verify.cached', 'raw:node-crypto', median(measured['raw:node-crypto']!), 'ops/s', ROUNDS);
print('verify.cached', 'bulwark:cached', median(measured['bulwark:cached']!), 'ops/s', ROUNDS);

// Latency of one cached hit, each timed alone.
const samples: number[] = [];
for (let i = 0; i < 50_000; i++) {
  const t0 = process.hrtime.bigint();
  cached.check(pins, input);
  samples.push(Number(process.hrtime.bigint() - t0) / 1000);
}
samples.sort((a, b) => a - b);
print('verify.cached.latency_p50', 'bulwark:cached', samples[Math.floor(samples.length * 0.5)]!, 'us', samples.length);
print('verify.cached.latency_p99', 'bulwark:cached', samples[Math.floor(samples.length * 0.99)]!, 'us', samples.length);
const ratio = median(measured.bulwark!.map((v, i) => v / measured['raw:node-crypto']![i]!));
console.error(`bench schemapin: uncached/raw (median of per-round ratios) = ${ratio.toFixed(3)}; cache ${JSON.stringify(cached.stats())}`);
