// The key manager in NATS operator mode for end-to-end tests: a private nats-server with the
// configuration `bulwark init` writes (test/attack/private-bulwark.ts), the key manager under its
// own NATS user (svc.key-manager's permission table) with custody of the account, operator and
// system keys, NATS revocations pushed through the system account; the test's own connections
// (harness, ledger stand-in, readers) as users with every subject. Agents enrol with a join
// bundle and then connect as themselves (`enrollAgent`).
import { randomUUID } from 'node:crypto';
import { connectBus, type Bus } from '@bulwark/bus';
import { enrollWithJoinBundle, parseJoinBundle, type Certified } from '@bulwark/client';
import type { KvDirectory } from '@bulwark/bus';
import { generateKey, loadIdentity } from '@bulwark/keystore';
import { encodeNkeySeed, inboxPrefixFor, issueUserJwt, nkeyPair, permissionsFor } from '@bulwark/nats-auth';
import { startPrivateBulwark, type PrivateBulwark } from '../../../test/attack/private-bulwark.js';
import { NatsRevoker, type KeyManager, type KeyManagerOptions } from '../src/index.js';
import { harness, KM, provider, type Harness } from './world.js';
import { Commands } from '@bulwark/bus';

export interface OperatorWorld {
  readonly pb: PrivateBulwark;
  readonly h: Harness;
  readonly revoker: NatsRevoker;
  readonly km: KeyManager;
  /** The NATS user the key manager's connection started as. */
  readonly kmNatsUser: string;
  enrollAgent(admin: { call: (subject: typeof Commands.keys.invite, body: unknown) => Promise<unknown> }, reader: KvDirectory, options?: { maxReconnectAttempts?: number }): Promise<EnrolledAgent>;
  close(): Promise<void>;
}

export interface EnrolledAgent {
  readonly id: string;
  readonly bus: Bus;
  readonly certified: Certified;
  readonly identity: { id: string; x25519: { secretKey: Uint8Array; publicKey: Uint8Array }; ed25519: { secretKey: Uint8Array; publicKey: Uint8Array } };
  readonly credentials: { jwt: string; seed: Uint8Array };
}

/** `ownKeys`: svc.key-manager's own (init) identity is in its custody store too, as `bulwark init` leaves it, and it starts with it loaded from there. */
export async function startOperatorWorld(options: { keyStore?: 'file' | 'hsm'; km?: Partial<KeyManagerOptions>; ownKeys?: boolean } = {}): Promise<OperatorWorld> {
  const pb = await startPrivateBulwark();
  const rootSeed = async (kind: 'nats-account' | 'nats-operator' | 'nats-system-account') => (await pb.store.get({ principal: 'root', kind, version: 1 })).secretKey;
  let kmNatsUser = '';
  const userFor = async (name: string): Promise<{ credentials: { jwt: string; seed: Uint8Array }; inboxPrefix?: string }> => {
    const account = nkeyPair('nats-account', await rootSeed('nats-account'));
    const raw = generateKey(provider, 'nats-user');
    const user = nkeyPair('nats-user', raw);
    const isKm = name === 'key-manager';
    if (isKm) kmNatsUser = user.getPublicKey();
    const permissions = isKm ? permissionsFor({ kind: 'principal', id: KM }, pb.namespace) : { publish: ['>'], subscribe: ['>'], respond: true };
    const jwt = await issueUserJwt(isKm ? KM : `test-${name}`, user, account, permissions, Date.now() + 3_600_000);
    account.clear();
    user.clear();
    return { credentials: { jwt, seed: encodeNkeySeed('nats-user', raw) }, ...(isKm ? { inboxPrefix: inboxPrefixFor({ kind: 'principal', id: KM }) } : {}) };
  };
  const h = await harness({
    ns: pb.namespace,
    url: pb.url,
    keyStore: options.keyStore ?? 'file',
    credentialsFor: userFor,
    prepareStore: async (store) => {
      for (const kind of ['nats-account', 'nats-operator', 'nats-system-account'] as const) await store.put({ principal: 'root', kind, version: 1 }, await rootSeed(kind));
    },
  });
  const revoker = await NatsRevoker.open({ store: h.store, provider, url: pb.url });
  let own: Partial<KeyManagerOptions> = {};
  if (options.ownKeys === true) {
    const init = h.world.identity(KM);
    await h.store.put({ principal: KM, kind: 'ed25519', version: 1 }, init.ed25519.secretKey);
    await h.store.put({ principal: KM, kind: 'x25519', version: 1 }, init.x25519.secretKey);
    const loaded = await loadIdentity(h.store, KM);
    own = { identity: { id: loaded.id, version: loaded.version, ed25519: loaded.ed25519, x25519: loaded.x25519 } };
  }
  const km = await h.start({ revoker, ...own, ...options.km });
  return {
    pb,
    h,
    revoker,
    km,
    kmNatsUser,
    async enrollAgent(admin, reader, o = {}) {
      const id = `agent.${randomUUID()}`;
      const invitation = (await admin.call(Commands.keys.invite, { principal: id, ttlMs: 60_000 })) as { join: string };
      const bundle = parseJoinBundle(invitation.join);
      const boot = await connectBus({ url: pb.url, name: `${id}#boot`, namespace: pb.namespace, credentials: { jwt: bundle.natsJwt!, seed: bundle.natsSeed! }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id }) });
      const raw = generateKey(provider, 'nats-user');
      const pair = nkeyPair('nats-user', raw);
      try {
        const { certified, identity } = await enrollWithJoinBundle({ bus: boot, provider, directory: reader, bundle, natsUser: pair.getPublicKey() });
        const credentials = { jwt: certified.natsJwt!, seed: encodeNkeySeed('nats-user', raw) };
        const bus = await connectBus({
          url: pb.url,
          name: id,
          namespace: pb.namespace,
          credentials,
          inboxPrefix: inboxPrefixFor({ kind: 'principal', id }),
          reconnectTimeWaitMs: 50,
          ...(o.maxReconnectAttempts === undefined ? {} : { maxReconnectAttempts: o.maxReconnectAttempts }),
        });
        return { id, bus, certified, identity: identity as EnrolledAgent['identity'], credentials };
      } finally {
        pair.clear();
        await boot.close();
      }
    },
    async close() {
      await h.close();
      await revoker.close();
      await pb.stop();
    },
  };
}
