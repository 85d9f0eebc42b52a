// `npm run bench -- policy`: in-process policy evaluation latency (issue "policy language").
// One JSON line per figure on stdout (DESIGN §11); notes on method go to stderr.
//
// Method. Uncached figures time every call with process.hrtime.bigint (the timer itself
// costs ~0.05-0.1 µs, included). Cached calls are sub-microsecond, below what one hrtime
// pair resolves well, so cached figures time batches of BATCH consecutive calls and take
// percentiles of the per-call batch means (a batch mean hides a single slow call: p99 of
// cached figures is a p99 of batch means). Each set holds the seed's three policies plus
// N-3 generated ones in the same shape (allow with a three-part condition, deny with a
// condition, requirements and an obligation; some verb(any), class and approval targets).
// Every figure cycles through REQUESTS distinct request objects (so cached figures are hits
// on many entries, never one object again and again). Two cached paths: `bulwark` is
// DecisionCache.evaluate(set, object), keyed by the request projected on what the set can
// read for its target (request-key.ts); `bulwark:json-text` is DecisionCache.evaluateJson(set,
// text), the service's path, keyed first by the request text as received. `canonicalize.*`
// are the costs of keying the whole request instead: RFC 8785 (`raw:canonicalize`) and the
// sorted-key JSON of cache-key.ts (`bulwark:cache-key`).
import { readFileSync } from 'node:fs';
import canonicalize from 'canonicalize';
import { cacheKey, compilePolicySources, DecisionCache, type PolicySet } from '@bulwark/policy-language';

const SAMPLES = 20_000;
const WARMUP = 5_000;
const BATCH = 64;
const REQUESTS = 256;
const SIZES = [1, 100, 1000] as const;

const seed = readFileSync(new URL('../../libs/policy-language/examples/seed.policy', import.meta.url), 'utf8');
const VERBS = ['read', 'write', 'list', 'update', 'delete', 'invoke', 'schedule', 'route', 'create', 'export', 'transform', 'allocate'];
const RESOURCES = Array.from({ length: 40 }, (_, i) => `res_${i}`);
const CLASSES = ['high_memory_operations', 'statistical_operations', 'long_running_operations', 'bulk', 'network'];
const LEVELS = ['public', 'internal', 'confidential', 'secret', 'top_secret'];

function random(seedValue: number): () => number {
  let a = seedValue >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generatedPolicy(i: number, rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const resource = i % 10 === 0 ? 'any' : pick(RESOURCES);
  const extra = i % 50 === 0 ? `\n    require: lead_approval for ${pick(CLASSES)}` : '';
  const denyTarget = i % 20 === 0 ? pick(CLASSES) : `${pick(VERBS)}(${pick(RESOURCES)})`;
  return `policy generated_${i} {
    allow: ${pick(VERBS)}(${resource}) if (
        user.clearance >= "${pick(LEVELS)}" &&
        user.groups.contains("g${i % 16}") &&
        session.mfa_verified == true
    )
    deny: ${denyTarget} if data.contains_pii == true && user.role != "admin"
    require: [user.active, session.secure_connection, audit_trail = "basic"]${extra}
}
`;
}

function policySet(size: number): PolicySet {
  const rnd = random(size);
  const generated = Array.from({ length: Math.max(0, size - 3) }, (_, i) => generatedPolicy(i, rnd)).join('\n');
  const text = size === 1 ? seed.slice(0, seed.indexOf('policy data_flow_control')) : `${seed}\n${generated}`;
  const set = compilePolicySources([{ text, file: `bench-${size}.policy` }]);
  if (set.policies.length !== size) throw new Error(`bench: built ${set.policies.length} policies, wanted ${size}`);
  return set;
}

function requests(count: number): unknown[] {
  const rnd = random(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  return Array.from({ length: count }, (_, i) => ({
    // A quarter are the seed's read of sensitive data; the rest spread over the generated vocabulary.
    action: i % 4 === 0 ? 'read' : pick(VERBS),
    resource: i % 4 === 0 ? 'sensitive_data' : pick(RESOURCES),
    classes: i % 3 === 0 ? [pick(CLASSES)] : [],
    context: {
      user: {
        clearance: pick(LEVELS),
        need_to_know: ['pii', 'finance'],
        groups: [`g${i % 16}`, `g${(i + 5) % 16}`],
        background_check: { current: true },
        role: i % 7 === 0 ? 'admin' : 'analyst',
        active: true,
      },
      session: { mfa_verified: i % 5 !== 0, secure_connection: true },
      data: { classification: 'pii', contains_pii: i % 6 === 0 },
      system: { maintenance_mode: false },
    },
  }));
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

function emit(figure: string, impl: string, value: number, n: number): void {
  console.log(JSON.stringify({ bench: 'policy', figure, impl, value: Number(value.toFixed(3)), unit: 'us', n }));
}

/** Per-call timing: one hrtime pair around each call. */
function timePerCall(call: (request: unknown) => unknown, inputs: readonly unknown[]): Float64Array {
  let sink = 0;
  for (let i = 0; i < WARMUP; i++) sink += call(inputs[i % inputs.length]) === null ? 1 : 0;
  const samples = new Float64Array(SAMPLES);
  for (let i = 0; i < SAMPLES; i++) {
    const input = inputs[i % inputs.length];
    const t0 = process.hrtime.bigint();
    const result = call(input);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    if (result === null) sink++;
  }
  if (sink < 0) console.error(sink);
  return samples.sort();
}

/** Batch timing: the mean of BATCH consecutive calls per sample, going on through the inputs from batch to batch. */
function timeBatches(call: (request: unknown) => unknown, inputs: readonly unknown[]): Float64Array {
  let sink = 0;
  for (let i = 0; i < WARMUP; i++) sink += call(inputs[i % inputs.length]) === null ? 1 : 0;
  const batches = SAMPLES / 10;
  const samples = new Float64Array(batches);
  let next = 0;
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) {
      if (call(inputs[next]) === null) sink++;
      next = next + 1 === inputs.length ? 0 : next + 1;
    }
    samples[b] = Number(process.hrtime.bigint() - t0) / 1000 / BATCH;
  }
  if (sink < 0) console.error(sink);
  return samples.sort();
}

const inputs = requests(REQUESTS);
console.error(`bench policy: uncached = hrtime per call (n=${SAMPLES}); cached = means of ${BATCH}-call batches (n=${SAMPLES / 10} batches); ${inputs.length} distinct requests`);
for (const size of SIZES) {
  const started = performance.now();
  const set = policySet(size);
  console.error(`bench policy: ${size} policies compiled in ${(performance.now() - started).toFixed(1)} ms`);

  const uncached = timePerCall((r) => set.evaluate(r), inputs);
  emit(`eval.uncached.${size}.p50`, 'bulwark', percentile(uncached, 0.5), uncached.length);
  emit(`eval.uncached.${size}.p99`, 'bulwark', percentile(uncached, 0.99), uncached.length);

  const scan = timePerCall((r) => set.evaluateByScan(r), inputs);
  emit(`eval.uncached.${size}.p50`, 'bulwark:scan', percentile(scan, 0.5), scan.length);
  emit(`eval.uncached.${size}.p99`, 'bulwark:scan', percentile(scan, 0.99), scan.length);

  const cache = new DecisionCache({ max: 10_000 });
  const cached = timeBatches((r) => cache.evaluate(set, r), inputs);
  emit(`eval.cached.${size}.p50`, 'bulwark', percentile(cached, 0.5), cached.length);
  emit(`eval.cached.${size}.p99`, 'bulwark', percentile(cached, 0.99), cached.length);
  if (cache.stats.misses > inputs.length) throw new Error(`bench: expected at most ${inputs.length} misses, got ${cache.stats.misses}`);

  // The service's path: the request as the JSON text it arrives in, the text as first key.
  // Each call decodes the bytes afresh, as the service does per message, so the key string is
  // new every time (a reused string would have its hash cached by V8 and flatter the figure).
  const payloads = inputs.map((r) => Buffer.from(JSON.stringify(r), 'utf8'));
  const textCache = new DecisionCache({ max: 10_000 });
  const cachedText = timeBatches((bytes) => textCache.evaluateJson(set, (bytes as Buffer).toString('utf8')), payloads);
  emit(`eval.cached.${size}.p50`, 'bulwark:json-text', percentile(cachedText, 0.5), cachedText.length);
  emit(`eval.cached.${size}.p99`, 'bulwark:json-text', percentile(cachedText, 0.99), cachedText.length);
}

// The floor under every cached figure: canonicalizing the request for the cache key.
const canonical = timeBatches((r) => canonicalize(r), inputs);
emit('canonicalize.request.p50', 'raw:canonicalize', percentile(canonical, 0.5), canonical.length);
emit('canonicalize.request.p99', 'raw:canonicalize', percentile(canonical, 0.99), canonical.length);
// The key DecisionCache.evaluate uses now (sorted-key JSON, cache-key.ts), on the same requests.
const keyed = timeBatches((r) => cacheKey(r), inputs);
emit('canonicalize.request.p50', 'bulwark:cache-key', percentile(keyed, 0.5), keyed.length);
emit('canonicalize.request.p99', 'bulwark:cache-key', percentile(keyed, 0.99), keyed.length);
