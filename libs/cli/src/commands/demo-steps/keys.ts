/**
 * `bulwark demo`'s key step (issue 12): a fresh agent is invited by the administrator and enrolls
 * with its join bundle (its keys and NATS user made here, never handed out), is allowed; rotates
 * its key mid-run and is allowed under the new version; is revoked, and its next call is denied.
 * Needs the key manager under `bulwark up`.
 */
import { randomUUID } from 'node:crypto';
import { connectBus, type Bus, type KvDirectory } from '@bulwark/bus';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, type BulwarkClient, type PolicyDecision } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { generateKey } from '@bulwark/keystore';
import { encodeNkeySeed, inboxPrefixFor, nkeyPair } from '@bulwark/nats-auth';

/** What the step uses of the demo's context. */
export interface KeysStepContext {
  readonly admin: { readonly bus: Bus; readonly provider: CryptoProvider; readonly directory: KvDirectory };
  readonly adminClient: BulwarkClient;
  readonly tag: string;
}

type Identity = { id: string; x25519: { secretKey: Uint8Array; publicKey: Uint8Array } };

/** An allowed tool of the demo's policy (demo_<tag> rule 1). */
const searchOf = (tag: string) => ({ action: 'invoke', resource: `search_${tag}`, classes: ['tool_invocation'], context: { agent: { trust: 0.9, sandboxed: false } } });

function fail(what: string): never {
  throw new Error(what);
}

/** A decision as the agent, waiting (up to 10 s) for the policy service to see a new directory entry. */
async function decide(client: BulwarkClient, tag: string): Promise<PolicyDecision> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const d = await client.policy.evaluate(searchOf(tag), { timeoutMs: 2000 });
    if (!(d.decision === 'Deny' && d.failure !== undefined) || Date.now() > deadline) return d;
    client.reset();
    await new Promise((r) => setTimeout(r, 300));
  }
}

export const keysStep = {
  title: "an agent enrolled with a join token, its key rotated mid-run, then revoked: its next call is denied",
  async run(ctx: KeysStepContext): Promise<string> {
    const { provider, directory } = ctx.admin;
    const url = ctx.admin.bus.url;
    const id = `agent.${randomUUID()}`;
    const buses: Bus[] = [];
    const connectAs = async (name: string, jwt: string, seed: Uint8Array): Promise<Bus> => {
      const bus = await connectBus({ url, name, namespace: ctx.admin.bus.namespace, maxReconnectAttempts: 0, reconnectTimeWaitMs: 1, connectTimeoutMs: 3000, credentials: { jwt, seed }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id }) });
      buses.push(bus);
      return bus;
    };
    const clientOf = (bus: Bus, self: Identity) => createBulwarkClient({ bus, sessions: { provider, self, directory }, decisionTimeoutMs: 2000 });
    const newUser = () => {
      const raw = generateKey(provider, 'nats-user');
      const pair = nkeyPair('nats-user', raw);
      const publicKey = pair.getPublicKey();
      pair.clear();
      return { publicKey, seed: encodeNkeySeed('nats-user', raw) };
    };
    try {
      const invitation = await ctx.adminClient.keys.invite(id, { ttlMs: 10 * 60_000 });
      const bundle = parseJoinBundle(invitation.join);
      if (bundle.natsJwt === null || bundle.natsSeed === null) fail('the join bundle carries no NATS credentials (the bus does not authenticate)');
      const boot = await connectAs(`${id}#boot`, bundle.natsJwt, bundle.natsSeed);
      const user2 = newUser();
      const { identity, certified } = await enrollWithJoinBundle({ bus: boot, provider, directory, bundle, natsUser: user2.publicKey });
      const v2 = clientOf(await connectAs(id, certified.natsJwt ?? fail('no NATS user JWT in the enrolment reply'), user2.seed), identity);
      const first = await decide(v2, ctx.tag);
      if (first.decision !== 'Allow') fail(`the enrolled agent (v2) should be allowed, got ${first.decision}: ${first.decision === 'Deny' ? first.reason : ''}`);
      // Mid-run: new keys made here, certified as version 3; the agent moves to them.
      const keys3 = { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair() };
      const user3 = newUser();
      const rotated = await v2.keys.rotate(id, 3, { ...keys3, natsUser: user3.publicKey });
      const v3 = clientOf(await connectAs(`${id}#v3`, rotated.natsJwt ?? fail('no NATS user JWT in the rotation reply'), user3.seed), { id, x25519: keys3.x25519 });
      const second = await decide(v3, ctx.tag);
      if (second.decision !== 'Allow') fail(`after the rotation the agent (v3) should be allowed, got ${second.decision}`);
      const view = await ctx.adminClient.keys.revoke(id, 'key_compromise');
      // Its next call: the session under the revoked key is refused and its NATS connection closed.
      await new Promise((r) => setTimeout(r, 1000));
      const after = await v3.policy.evaluate(searchOf(ctx.tag), { timeoutMs: 2000 });
      if (after.decision !== 'Deny' || after.failure === undefined) fail(`after the revocation the agent's call should be denied, got ${after.decision}`);
      return `${id}: enrolled as v2 (allowed), rotated to v${rotated.version} (allowed), revoked (versions ${view.versions.map((v) => `v${v.version} ${v.state}`).join(', ')}); next call: Deny (${after.failure})`;
    } finally {
      await Promise.all(buses.map((b) => b.close().catch(() => undefined)));
    }
  },
};
