// `npm run bench -- crypto [--rounds N] [--ms M] [--clock cpu|wall] [--figure NAME]`: ops/s of every primitive for the default
// (node) provider, the noble provider and the bare node:crypto call, as JSON lines (README.md).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { createCryptoProvider, defaultCryptoProvider, type CryptoProvider } from '@bulwark/crypto';

type Impl = 'bulwark' | 'bulwark:noble' | 'raw:node-crypto';
type Op = () => Uint8Array | boolean;

interface Figure {
  readonly figure: string;
  readonly impls: Readonly<Record<Impl, Op>>;
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench crypto: --${name} needs a positive number, got '${process.argv[at + 1] ?? ''}'`);
    process.exit(2);
  }
  return value;
}

const ROUNDS = option('rounds', 72);
const SAMPLE_MS = option('ms', 10);
const CLOCK = process.argv.includes('--clock') ? process.argv[process.argv.indexOf('--clock') + 1] : 'cpu';
if (CLOCK !== 'cpu' && CLOCK !== 'wall') {
  console.error(`bench crypto: --clock is cpu or wall, got '${CLOCK ?? ''}'`);
  process.exit(2);
}
const only = process.argv.includes('--figure') ? process.argv[process.argv.indexOf('--figure') + 1] : undefined;

const bulwark = defaultCryptoProvider();
const noble = createCryptoProvider('noble');
if (bulwark.name !== 'node') console.error(`bench crypto: note: the default provider is '${bulwark.name}' (SYMBIONT_CRYPTO_PROVIDER)`);

// --- inputs, made once -------------------------------------------------------------------
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex'); // RFC 8410 §4 prefix of a raw key
const message = randomBytes(64); // an event hash or a handshake transcript: small
const edSeed = new Uint8Array(randomBytes(32));
const edPublic = bulwark.ed25519.publicKey(edSeed);
const edSignature = bulwark.ed25519.sign(edSeed, message);
const edPrivateKO = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(edSeed).toString('base64url'), x: '' }, format: 'jwk' });
const edPublicKO = createPublicKey(edPrivateKO);

const xSecret = new Uint8Array(randomBytes(32));
const xPeer = bulwark.x25519.generateKeyPair();
const xSecretKO = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(xSecret).toString('base64url'), x: '' }, format: 'jwk' });
const xPeerKO = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(xPeer.publicKey).toString('base64url') }, format: 'jwk' });

// More distinct keys than the node provider's public-key cache holds (1024), used round-robin,
// so every verification imports its key: the first message from a new peer.
const COLD_KEYS = 4096;
const coldSigners = Array.from({ length: COLD_KEYS }, () => {
  const pair = bulwark.ed25519.generateKeyPair();
  return { publicKey: pair.publicKey, spki: Buffer.concat([SPKI_ED25519, pair.publicKey]), signature: bulwark.ed25519.sign(pair.secretKey, message) };
});
let coldNext = 0;
function coldSigner(): (typeof coldSigners)[number] {
  coldNext = (coldNext + 1) % COLD_KEYS;
  return coldSigners[coldNext]!;
}

const aeadKey = new Uint8Array(randomBytes(32));
const nonce = new Uint8Array(randomBytes(12));
const aad = new Uint8Array(randomBytes(32)); // a frame header
const kib1 = new Uint8Array(randomBytes(1024));
const kib64 = new Uint8Array(randomBytes(64 * 1024));
const hkdfIkm = new Uint8Array(randomBytes(32));
const hkdfSalt = new Uint8Array(randomBytes(32));
const hkdfInfo = new TextEncoder().encode('bulwark bench hkdf');

// --- the bare node:crypto calls each figure is compared with ---------------------------------
function rawSealOpen(cipher: 'chacha20-poly1305' | 'aes-256-gcm', plaintext: Uint8Array): Op {
  return () => {
    const c = createCipheriv(cipher as 'aes-256-gcm', aeadKey, nonce, { authTagLength: 16 });
    c.setAAD(aad);
    const sealed = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    const d = createDecipheriv(cipher as 'aes-256-gcm', aeadKey, nonce, { authTagLength: 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    d.setAAD(aad);
    const body = d.update(sealed.subarray(0, sealed.length - 16));
    d.final();
    return body;
  };
}

function sealOpen(p: CryptoProvider, aead: 'chacha20poly1305' | 'aes256gcm', plaintext: Uint8Array): Op {
  return () => p[aead].open(aeadKey, nonce, p[aead].seal(aeadKey, nonce, plaintext, aad), aad);
}

function providerFigures(p: CryptoProvider): Record<string, Op> {
  return {
    'ed25519.sign': () => p.ed25519.sign(edSeed, message),
    'ed25519.verify': () => p.ed25519.verify(edPublic, message, edSignature),
    'ed25519.verify.uncached_key': () => {
      const signer = coldSigner();
      return p.ed25519.verify(signer.publicKey, message, signer.signature);
    },
    'x25519.shared': () => p.x25519.sharedSecret(xSecret, xPeer.publicKey),
    'chacha20poly1305.seal_open.1KiB': sealOpen(p, 'chacha20poly1305', kib1),
    'chacha20poly1305.seal_open.64KiB': sealOpen(p, 'chacha20poly1305', kib64),
    'aes256gcm.seal_open.1KiB': sealOpen(p, 'aes256gcm', kib1),
    'hmac_sha256.1KiB': () => p.hmacSha256(aeadKey, kib1),
    'sha256.1KiB': () => p.sha256(kib1),
    'hkdf_sha256.64B': () => p.hkdfSha256(hkdfIkm, hkdfSalt, hkdfInfo, 64),
  };
}

const raw: Record<string, Op> = {
  'ed25519.sign': () => sign(null, message, edPrivateKO),
  'ed25519.verify': () => verify(null, message, edPublicKO, edSignature),
  // The bare call with the key as DER, the usual way to hand node:crypto a raw key.
  'ed25519.verify.uncached_key': () => {
    const signer = coldSigner();
    return verify(null, message, { key: signer.spki, format: 'der', type: 'spki' }, signer.signature);
  },
  'x25519.shared': () => diffieHellman({ privateKey: xSecretKO, publicKey: xPeerKO }),
  'chacha20poly1305.seal_open.1KiB': rawSealOpen('chacha20-poly1305', kib1),
  'chacha20poly1305.seal_open.64KiB': rawSealOpen('chacha20-poly1305', kib64),
  'aes256gcm.seal_open.1KiB': rawSealOpen('aes-256-gcm', kib1),
  'hmac_sha256.1KiB': () => createHmac('sha256', aeadKey).update(kib1).digest(),
  'sha256.1KiB': () => createHash('sha256').update(kib1).digest(),
  'hkdf_sha256.64B': () => new Uint8Array(hkdfSync('sha256', hkdfIkm, hkdfSalt, hkdfInfo, 64)),
};

if (only !== undefined && !(only in raw)) {
  console.error(`bench crypto: no figure '${only}'; figures: ${Object.keys(raw).join(', ')}`);
  process.exit(2);
}

const ours = providerFigures(bulwark);
const theirs = providerFigures(noble);
const figures: Figure[] = Object.keys(raw)
  .filter((figure) => only === undefined || figure === only)
  .map((figure) => ({
    figure,
    impls: { bulwark: ours[figure]!, 'bulwark:noble': theirs[figure]!, 'raw:node-crypto': raw[figure]! },
  }));

// --- measurement ---------------------------------------------------------------------------
let sink = 0; // keeps results observable so no call can be optimised away

function consume(result: Uint8Array | boolean): void {
  sink ^= typeof result === 'boolean' ? Number(result) : (result[0] ?? 0) ^ result.length;
}

/** Calls per timer read, so that reading the clock costs < 1% even for microsecond operations. */
function batchSize(op: Op): number {
  let batch = 1;
  for (;;) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) consume(op());
    if (Number(process.hrtime.bigint() - start) > 200_000 || batch >= 1 << 16) return batch;
    batch *= 2;
  }
}

/**
 * CPU time of this process (getrusage, microsecond-precise; /proc's per-thread schedstat only
 * moves at scheduler ticks of ~4 ms, too coarse for 10 ms samples). The same as wall time for
 * these single-threaded calls on an idle core, but not inflated while a neighbour on this shared
 * 2-core machine holds the core. V8's background GC threads do count, as they would on any host.
 */
function processCpuNs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
}

function wallNs(): number {
  return Number(process.hrtime.bigint());
}

const clock = CLOCK === 'cpu' ? processCpuNs : wallNs;

/** One sample: ops per second of the chosen clock over about SAMPLE_MS (wall) of back-to-back calls. */
function sample(op: Op, batch: number): number {
  const budget = SAMPLE_MS * 1e6;
  const wallStart = wallNs();
  const clockStart = clock();
  let calls = 0;
  while (wallNs() - wallStart < budget) {
    for (let i = 0; i < batch; i++) consume(op());
    calls += batch;
  }
  return calls / ((clock() - clockStart) / 1e9);
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

const orders = permutations<Impl>(['bulwark', 'bulwark:noble', 'raw:node-crypto']);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const summary: string[] = [];
for (const { figure, impls } of figures) {
  const names = orders[0]!;
  const batches = new Map(names.map((name) => [name, batchSize(impls[name])]));
  for (const name of names) sample(impls[name], batches.get(name)!); // warm-up, not recorded
  const samples = new Map<Impl, number[]>(names.map((name) => [name, []]));
  // Many short samples, interleaved: each round runs every implementation once, in the next of
  // all the possible orders, so a burst of load from a neighbour on this shared machine (or the
  // garbage one implementation leaves for the next) lands on every implementation alike.
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of orders[round % orders.length]!) samples.get(name)!.push(sample(impls[name], batches.get(name)!));
  }
  const medians = new Map(names.map((name) => [name, median(samples.get(name)!)]));
  for (const name of names) {
    const value = Math.round(medians.get(name)! * 10) / 10;
    console.log(JSON.stringify({ bench: 'crypto', figure, impl: name, value, unit: 'ops/s', n: ROUNDS }));
  }
  // Also the median of the per-round ratios: each compares samples taken within milliseconds of
  // each other, so slow drifts in the machine's load cancel out.
  const raw = samples.get('raw:node-crypto')!;
  const roundRatio = (impl: Impl) => median(samples.get(impl)!.map((value, round) => value / raw[round]!)).toFixed(3);
  const base = medians.get('raw:node-crypto')!;
  summary.push(
    `${figure.padEnd(34)} bulwark ${(medians.get('bulwark')! / base).toFixed(3)}x raw (per round ${roundRatio('bulwark')})` +
      `   noble ${(medians.get('bulwark:noble')! / base).toFixed(3)}x raw (per round ${roundRatio('bulwark:noble')})`,
  );
}
console.error(summary.join('\n'));
if (sink === 0.5) console.error('unreachable'); // reads sink
