// Key manager figures (issue 12), in NATS operator mode (a private nats-server with the
// configuration `bulwark init` writes, the key manager under its own NATS user, the ledger
// stand-in of services/key-manager/test/world.ts):
// - keys.enroll: invite + enroll (keys made by the agent, proof of possession, certified entry
//   and user JWT) per second, sequential; raw:nats = bare request/reply round trips per second
//   on the same server (the transport floor).
// - keys.revoke_to_refusal: keys.revoke until a KvDirectory reader refuses the principal
//   (p50 and p99, ms); raw:nats-kv = a bare directory-bucket write until the same reader sees it.
// - keys.revoke_to_disconnect: keys.revoke until the server closes the agent's connection;
//   raw:nats-claims = the bare account-claims push (NatsRevoker alone) until the close.
// - keys.hsm_sign: root signatures per second through the HSM key store (HsmRootSigner over
//   SoftHSM2 2.6.1, a token made for the run; what signs every directory entry when
//   SYMBIONT_KEY_STORE_TYPE=hsm); raw:pkcs11 = SoftHSM's own C_SignInit + C_Sign (CKM_EDDSA) on
//   the same key through pkcs11js, in the same run; raw:software = the in-memory Ed25519 signature
//   the file store's root makes, for scale.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Commands, connectBus, publishDirectoryEntry, type Bus } from '@bulwark/bus';
import { enrollWithJoinBundle, parseJoinBundle } from '@bulwark/client';
import { encodeDirectoryEntry, signDirectoryEntry } from '@bulwark/envelope';
import { generateKey, openHsmKeyStore, Pkcs11Token, provisionHsmKeys } from '@bulwark/keystore';
import { createSoftHsmToken } from '@bulwark/testkit';
import { encodeNkeySeed, ensureNatsUser, inboxPrefixFor, issueUserJwt, nkeyPair, permissionsFor } from '@bulwark/nats-auth';
import { NatsRevoker } from '../../services/key-manager/src/index.js';
import { startPrivateBulwark } from '../attack/private-bulwark.js';
import { ADMIN, harness, KM, provider } from '../../services/key-manager/test/world.js';

const RUNS = Number(process.argv[2] ?? 20);

function emit(figure: string, impl: string, value: number, unit: string, n: number): void {
  process.stdout.write(`${JSON.stringify({ bench: 'keys', figure, impl, value: Number(value.toFixed(2)), unit, n })}\n`);
}
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
function latency(figure: string, impl: string, xs: readonly number[]): void {
  emit(`${figure}.p50`, impl, quantile(xs, 0.5), 'ms', xs.length);
  emit(`${figure}.p99`, impl, quantile(xs, 0.99), 'ms', xs.length);
}
async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const t0 = performance.now();
  while (!check() && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 1));
}

/** Signatures per second of `sign` over `message`, for about `ms`. */
function signRate(sign: (m: Uint8Array) => unknown, message: Uint8Array, ms: number): { rate: number; n: number } {
  for (let i = 0; i < 50; i++) sign(message);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 50; i++) sign(message);
    n += 50;
  }
  return { rate: (n * 1000) / (performance.now() - t0), n };
}

{
  const token = createSoftHsmToken();
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-hsm-'));
  try {
    const t = Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });
    provisionHsmKeys(t, { rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' });
    t.close();
    // A directory entry's bytes: what the root signs.
    const message = encodeDirectoryEntry({ id: `agent.${randomUUID()}`, ed25519PublicKey: new Uint8Array(32).fill(1), x25519PublicKey: new Uint8Array(32).fill(2), keyVersion: 2, notBefore: Date.now(), notAfter: Date.now() + 86_400_000, revoked: false });
    const raw = (): { rate: number; n: number } => {
      const p = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;
      const lib = new p.PKCS11();
      lib.load(token.module);
      lib.C_Initialize();
      try {
        const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trim() === token.label)!;
        const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
        lib.C_Login(session, p.CKU_USER, token.pin);
        lib.C_FindObjectsInit(session, [
          { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
          { type: p.CKA_LABEL, value: 'bulwark-root' },
        ]);
        const [key] = lib.C_FindObjects(session, 1);
        lib.C_FindObjectsFinal(session);
        const data = Buffer.from(message);
        const out = Buffer.alloc(64);
        return signRate(() => {
          lib.C_SignInit(session, { mechanism: 0x1057 }, key!);
          lib.C_Sign(session, data, out);
        }, message, 2000);
      } finally {
        lib.C_Finalize();
        lib.close();
      }
    };
    const viaStore = async (): Promise<{ rate: number; n: number }> => {
      const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: { SYMBIONT_HSM_PIN: token.pin } });
      try {
        return signRate((m) => hsm.root.sign(m), message, 2000);
      } finally {
        hsm.close();
      }
    };
    // Interleaved, twice each; the better of two (the machine is shared).
    const rawRuns = [raw()];
    const storeRuns = [await viaStore()];
    rawRuns.push(raw());
    storeRuns.push(await viaStore());
    const best = (xs: { rate: number; n: number }[]) => xs.reduce((a, b) => (b.rate > a.rate ? b : a));
    emit('keys.hsm_sign', 'bulwark', best(storeRuns).rate, 'sig/s', best(storeRuns).n);
    emit('keys.hsm_sign', 'raw:pkcs11', best(rawRuns).rate, 'sig/s', best(rawRuns).n);
    const soft = provider.ed25519.generateKeyPair().secretKey;
    const sw = signRate((m) => provider.ed25519.sign(soft, m), message, 2000);
    emit('keys.hsm_sign', 'raw:software', sw.rate, 'sig/s', sw.n);
  } finally {
    token.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

const pb = await startPrivateBulwark();
const rootSeed = async (kind: 'nats-account' | 'nats-operator' | 'nats-system-account') => (await pb.store.get({ principal: 'root', kind, version: 1 })).secretKey;
async function userFor(name: string): Promise<{ credentials: { jwt: string; seed: Uint8Array }; inboxPrefix?: string }> {
  const account = nkeyPair('nats-account', await rootSeed('nats-account'));
  const raw = generateKey(provider, 'nats-user');
  const user = nkeyPair('nats-user', raw);
  const km = name === 'key-manager';
  const jwt = await issueUserJwt(km ? KM : `bench-${name}`, user, account, km ? permissionsFor({ kind: 'principal', id: KM }, pb.namespace) : { publish: ['>'], subscribe: ['>'], respond: true }, Date.now() + 3_600_000);
  account.clear();
  user.clear();
  return { credentials: { jwt, seed: encodeNkeySeed('nats-user', raw) }, ...(km ? { inboxPrefix: inboxPrefixFor({ kind: 'principal', id: KM }) } : {}) };
}
const h = await harness({
  ns: pb.namespace,
  url: pb.url,
  credentialsFor: userFor,
  prepareStore: async (store) => {
    for (const kind of ['nats-account', 'nats-operator', 'nats-system-account'] as const) await store.put({ principal: 'root', kind, version: 1 }, await rootSeed(kind));
  },
});
const revoker = await NatsRevoker.open({ store: h.store, provider, url: pb.url });
try {
  await h.start({ revoker });
  const admin = await h.client(h.world.identity(ADMIN));
  const reader = await h.directory();

  // keys.enroll, and the agents for the revocations.
  const agents: { id: string; bus: Bus }[] = [];
  const t0 = performance.now();
  for (let i = 0; i < RUNS; i++) {
    const id = `agent.${randomUUID()}`;
    const bundle = parseJoinBundle(((await admin.call(Commands.keys.invite, { principal: id })) as { join: string }).join);
    const boot = await connectBus({ url: pb.url, name: `${id}#boot`, namespace: pb.namespace, credentials: { jwt: bundle.natsJwt!, seed: bundle.natsSeed! }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id }) });
    const raw = generateKey(provider, 'nats-user');
    const pair = nkeyPair('nats-user', raw);
    const { certified } = await enrollWithJoinBundle({ bus: boot, provider, directory: reader, bundle, natsUser: pair.getPublicKey() });
    pair.clear();
    await boot.close();
    agents.push({ id, bus: await connectBus({ url: pb.url, name: id, namespace: pb.namespace, credentials: { jwt: certified.natsJwt!, seed: encodeNkeySeed('nats-user', raw) }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id }), maxReconnectAttempts: 0, reconnectTimeWaitMs: 1 }) });
  }
  emit('keys.enroll', 'bulwark', (RUNS * 1000) / (performance.now() - t0), 'ops/s', RUNS);

  const rawUser = await userFor('raw');
  const nc = await connect({ servers: pb.url, authenticator: jwtAuthenticator(rawUser.credentials.jwt, rawUser.credentials.seed) });
  const subject = `${pb.namespace.subjectPrefix}bench.raw.echo`;
  nc.subscribe(subject, { callback: (_e, m) => void m.respond(m.data) });
  const rawN = RUNS * 50;
  const r0 = performance.now();
  for (let i = 0; i < rawN; i++) await nc.request(subject, new Uint8Array(512), { timeout: 2000 });
  emit('keys.enroll', 'raw:nats', (rawN * 1000) / (performance.now() - r0), 'ops/s', rawN);

  // Revocations.
  const refusal: number[] = [];
  const disconnect: number[] = [];
  for (const a of agents) {
    await until(() => reader.lookup(a.id)?.keyVersion === 2);
    const closed = a.bus.closed().then(() => performance.now());
    const s = performance.now();
    await admin.call(Commands.keys.revoke, { principal: a.id, reason: 'key_compromise' });
    await until(() => reader.lookup(a.id) === undefined);
    refusal.push(performance.now() - s);
    disconnect.push((await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 3000))])) - s);
  }
  latency('keys.revoke_to_refusal', 'bulwark', refusal);
  latency('keys.revoke_to_disconnect', 'bulwark', disconnect);

  // raw:nats-kv: a bare bucket write until the reader sees it.
  const kv: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const id = `agent.${randomUUID()}`;
    const entry = { id, ed25519PublicKey: provider.ed25519.generateKeyPair().publicKey, x25519PublicKey: provider.x25519.generateKeyPair().publicKey, keyVersion: 1, notBefore: Date.now() - 60_000, notAfter: Date.now() + 3_600_000, revoked: false };
    const s = performance.now();
    await publishDirectoryEntry(h.bus, signDirectoryEntry(provider, h.world.root.secretKey, entry));
    await until(() => reader.lookup(id) !== undefined);
    kv.push(performance.now() - s);
  }
  latency('keys.revoke_to_refusal', 'raw:nats-kv', kv);

  // raw:nats-claims: the claims push alone.
  const claims: number[] = [];
  const list = new Map<string, number>();
  for (let i = 0; i < RUNS; i++) {
    const { credentials } = await ensureNatsUser(pb.store, provider, { kind: 'principal', id: `agent.${randomUUID()}` }, pb.namespace);
    const bus = await connectBus({ url: pb.url, name: 'raw', namespace: pb.namespace, credentials, inboxPrefix: credentials.inboxPrefix, maxReconnectAttempts: 0, reconnectTimeWaitMs: 1 });
    const closed = bus.closed().then(() => performance.now());
    const s = performance.now();
    list.set(credentials.publicKey, Date.now());
    await revoker.push(list);
    claims.push((await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 3000))])) - s);
  }
  latency('keys.revoke_to_disconnect', 'raw:nats-claims', claims);
  await nc.close();
} finally {
  await h.close();
  await revoker.close();
  await pb.stop();
}
