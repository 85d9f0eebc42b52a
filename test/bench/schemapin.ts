// `npm run bench -- schemapin [--rounds N] [--ms M] [--clock cpu|wall]`: SchemaPin tool
// verifications per second, uncached and cached, against node:crypto's bare ECDSA P-256 verify
// of the same signature in the same run; and the latency of a cached hit (p50, p99). JSON lines
// (README.md); each figure line says in `work` what one operation does.
//
// The same key form and input for both sides of the uncached ratio: the raw call verifies the
// tool's signature over the same 32-byte digest with a KeyObject parsed once from the same
// SPKI PEM (bulwark parses it once too: keys.ts keeps KeyObjects per key text, which is key
// parsing, not a verification result). Everything else bulwark does per call is timed: the
// schemapin-v1 canonicalization of the schema object, its SHA-256, the Base64 decode of the
// signature, both revocation sources, the pin lookup and the content-pin comparison.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { CachedVerifier, canonicalizeSchema, checkTool, createWellKnownResponse, generateKeyPair, KeyPinStore, loadPublicKey, signSchema } from '@bulwark/schemapin';

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
const CLOCK = process.argv.includes('--clock') ? process.argv[process.argv.indexOf('--clock') + 1] : 'cpu';
if (CLOCK !== 'cpu' && CLOCK !== 'wall') {
  console.error(`bench schemapin: --clock is cpu or wall, got '${CLOCK ?? ''}'`);
  process.exit(2);
}
/** Microseconds of this process's CPU time (cpu, the default: not inflated while a neighbour holds the core) or of the wall clock. */
const clock = (): number => {
  if (CLOCK === 'wall') return Number(process.hrtime.bigint()) / 1000;
  const u = process.cpuUsage();
  return u.user + u.system;
};

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
// Same work on both sides: the key the raw call uses is the key ours verifies with, the digest it
// verifies is the one ours computes.
if (!loadPublicKey(publicKeyPem).key.equals(rawKey) || first.schemaHash !== `sha256:${rawDigest.toString('hex')}`) throw new Error('bench schemapin: the raw baseline does not verify what bulwark verifies');

const ops: Record<string, () => boolean> = {
  'raw:node-crypto': () => verify('sha256', rawDigest, { key: rawKey, dsaEncoding: 'der' }, rawSignature),
  bulwark: () => checkTool(pins, input).verdict === 'Trusted',
  'bulwark:cached': () => cached.check(pins, input).verdict === 'Trusted',
};
for (const op of Object.values(ops)) if (!op()) throw new Error('bench schemapin: an operation did not verify');

const WORK: Record<string, string> = {
  'raw:node-crypto': "crypto.verify('sha256', digest, {key: KeyObject, dsaEncoding: 'der'}, signature): digest = SHA-256 of the schemapin-v1 text (precomputed), KeyObject and DER signature made once",
  bulwark: 'checkTool(pins, {schema object, Base64 signature, discovery document with the SPKI PEM}): canonicalize, SHA-256, Base64 decode, KeyObject from the per-key-text cache, revocation (discovery list + document), pin, the same crypto.verify, content pin',
  'bulwark:cached': 'CachedVerifier.check hit: cache key from the schema JSON text, pin and both revocation sources re-checked',
};

/**
 * Interleaved finely: within a round the implementations take turns, 16 calls each, in an
 * order that rotates every turn, until the round's time is up, so that load from other
 * processes and the garbage one leaves for the next fall on all of them alike (this machine is
 * shared); each round gives one rate per implementation, the value is the median.
 */
function rates(): Record<string, number[]> {
  const impls = Object.entries(ops);
  const out: Record<string, number[]> = Object.fromEntries(impls.map(([k]) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const us: Record<string, number> = Object.fromEntries(impls.map(([k]) => [k, 0]));
    const calls: Record<string, number> = Object.fromEntries(impls.map(([k]) => [k, 0]));
    const end = process.hrtime.bigint() + BigInt(SAMPLE_MS * impls.length * 1e6);
    for (let turn = 0; process.hrtime.bigint() < end; turn++) {
      for (let j = 0; j < impls.length; j++) {
        const [impl, op] = impls[(turn + j) % impls.length]!;
        const t0 = clock();
        for (let i = 0; i < 16; i++) op();
        us[impl]! += clock() - t0;
        calls[impl]! += 16;
      }
    }
    for (const [impl] of impls) out[impl]!.push(calls[impl]! / (us[impl]! / 1e6));
  }
  return out;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const print = (figure: string, impl: string, value: number, unit: string, n: number, extra: Record<string, string> = {}): void =>
  console.log(JSON.stringify({ bench: 'schemapin', figure, impl, value: Math.round(value * 10) / 10, unit, n, ...extra }));

const measured = rates();
// Uncached and raw share the figure name (the same signature verified); the cached figure is its own.
const clockNote = { clock: CLOCK };
print('verify.uncached', 'raw:node-crypto', median(measured['raw:node-crypto']!), 'ops/s', ROUNDS, { ...clockNote, work: WORK['raw:node-crypto']! });
print('verify.uncached', 'bulwark', median(measured.bulwark!), 'ops/s', ROUNDS, { ...clockNote, work: WORK.bulwark! });
print('verify.cached', 'raw:node-crypto', median(measured['raw:node-crypto']!), 'ops/s', ROUNDS, { ...clockNote, work: WORK['raw:node-crypto']! });
print('verify.cached', 'bulwark:cached', median(measured['bulwark:cached']!), 'ops/s', ROUNDS, { ...clockNote, work: WORK['bulwark:cached']! });

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
console.log(JSON.stringify({ bench: 'schemapin', figure: 'verify.uncached.ratio', impl: 'bulwark', value: Math.round(ratio * 1000) / 1000, unit: 'bulwark/raw', n: ROUNDS, ...clockNote, work: 'median over rounds of bulwark ops/s ÷ raw ops/s of the same round' }));
console.error(`bench schemapin: uncached/raw (median of per-round ratios) = ${ratio.toFixed(3)}, of medians = ${(median(measured.bulwark!) / median(measured['raw:node-crypto']!)).toFixed(3)}; cache ${JSON.stringify(cached.stats())}`);
