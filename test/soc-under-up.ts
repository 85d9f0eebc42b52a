// The SOC stream on its channel under a running `bulwark up` (issue 12 "Channels"), as
// test/start.test.ts drives it: an analyst added with `bulwark principal add` joins soc.incidents
// (a new epoch) and its `bulwark soc tail` prints an incident read through the channel; revoked,
// it leaves the channel (a new epoch) and, subscribing raw to the SOC stream with every epoch key
// it ever held, opens no frame published after its revocation; an agent is refused the stream
// and the ledger's channel epochs, and no epoch is wrapped to it.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'vitest';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { connectBus, KvDirectory, recipientToken, RejectionReporter, ServicePrincipals, SOC_CHANNEL, startStreamConsumer, type Bus } from '@bulwark/bus';
import { CHANNEL_ISSUER, directoryIssuerKey, followChannelEpochs } from '@bulwark/channel';
import { createBulwarkClient } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { ChannelReceiver, type ChannelEpochKey } from '@bulwark/envelope';
import { loadIdentity, parseRootPublicKey, readRootPinFile } from '@bulwark/keystore';
import { analystChannelConsumers, loadNatsCredentials, OPERATOR_USER, readCredsFile } from '@bulwark/nats-auth';
import { homeEnvironment } from '../libs/cli/src/home/environment.js';
import { homeAt } from '../libs/cli/src/home/home.js';
import { openKeyStore } from '../libs/cli/src/home/session.js';
import { CLI, isolatedEnv, ROOT, spawnGroup, untilPrinted, type CliResult } from './bulwark-process.js';

type Bulwark = (args: string[], timeoutMs?: number, env?: NodeJS.ProcessEnv) => Promise<CliResult>;

interface ChannelView {
  readonly epoch: number;
  readonly reason: string;
  readonly subject: string | null;
  readonly subscribers: readonly { id: string; keyVersion: number }[];
}

const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

async function poll<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function checkSocChannelUnderUp(home: string, natsUrl: string, bulwark: Bulwark, nonAnalyst: { id: string; credsFile: string }): Promise<void> {
  const atHome = { SYMBIONT_HOME: home };
  const pin = readRootPinFile(join(home, 'admin', 'root.pub'));
  const channel = async (): Promise<ChannelView> => {
    const r = await bulwark(['keys', 'channel', 'get', SOC_CHANNEL, '--as', 'analyst.admin', '--json'], 30_000, atHome);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ChannelView;
  };
  const subscribers = (v: ChannelView) => v.subscribers.map((s) => s.id);
  const first = await channel();
  expect(subscribers(first)).toEqual(expect.arrayContaining([ServicePrincipals.incident, 'analyst.admin']));

  /** A principal enrolled through the key manager, its keys where `principal add` put them, connected with its own credentials. */
  const enrol = async (id: string) => {
    const added = await bulwark(['principal', 'add', id, '--json'], 60_000, atHome);
    expect(added.code, added.stdout + added.stderr).toBe(0);
    return JSON.parse(added.stdout) as { keyDir: string; credsFile: string };
  };
  const connectAs = async (id: string, keyDir: string, credsFile: string) => {
    const { provider, store } = await openKeyStore(homeEnvironment(homeAt(home), isolatedEnv({ SYMBIONT_KEY_DIR: keyDir })), ROOT);
    const identity = await loadIdentity(store, id);
    const creds = await readCredsFile(credsFile);
    const bus = await connectBus({ url: natsUrl, name: id, maxReconnectAttempts: 0, connectTimeoutMs: 3000, credentials: { jwt: creds.jwt, seed: creds.seed }, inboxPrefix: creds.inboxPrefix });
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey: parseRootPublicKey(pin, 'root.pub') });
    return { provider, identity, bus, directory, close: async () => { await directory.stop(); await bus.close(); } };
  };
  /** A burst of 20 denials by a fresh agent: one High policy_deny_burst incident. Resolves with its id. */
  const incident = async (): Promise<string> => {
    const agentId = `agent.${randomUUID()}`;
    const a = await enrol(agentId);
    const agent = await connectAs(agentId, a.keyDir, a.credsFile);
    try {
      const client = createBulwarkClient({ bus: agent.bus, sessions: { provider: agent.provider, self: agent.identity, directory: agent.directory }, rejections: quiet(agentId), decisionTimeoutMs: 5000 });
      for (let i = 0; i < 20; i++) expect((await client.policy.evaluate({ action: 'write', resource: `soc_vault_${i}` })).decision).toBe('Deny');
    } finally {
      await agent.close().catch(() => undefined);
    }
    return poll(`the High incident of ${agentId}`, 30_000, async () => {
      const r = await bulwark(['incident', 'list', '--as', 'analyst.admin', '--json'], 30_000, atHome);
      return (JSON.parse(r.stdout) as { id: string; agentId?: string; rule: string }[]).find((i) => i.agentId === agentId && i.rule === 'policy_deny_burst')?.id;
    });
  };

  // Added: the key manager takes it into the SOC channel at its enrolment (a new epoch).
  const sam = 'analyst.sam';
  const samKeys = await enrol(sam);
  const joined = await poll(`${sam} in ${SOC_CHANNEL}`, 20_000, async () => {
    const v = await channel();
    return subscribers(v).includes(sam) ? v : undefined;
  });
  expect(joined).toMatchObject({ reason: 'subscriber_added', subject: sam });
  expect(joined.epoch).toBeGreaterThan(first.epoch);

  // The epoch keys it holds, as it would keep them (followed from the ledger through its own session).
  const held: ChannelEpochKey[] = [];
  const samSide = await connectAs(sam, samKeys.keyDir, samKeys.credsFile);
  const follower = await followChannelEpochs({
    bus: samSide.bus, provider: samSide.provider, identity: { id: sam, x25519: samSide.identity.x25519 }, keyVersion: samSide.identity.version, directory: samSide.directory,
    ledgerPublicKey: samSide.directory.lookup(ServicePrincipals.audit)!.ed25519PublicKey, issuer: CHANNEL_ISSUER, issuerKey: directoryIssuerKey(samSide.directory, CHANNEL_ISSUER),
    channels: [SOC_CHANNEL], onEpoch: (k) => void held.push(k), rejections: quiet(sam), syncIntervalMs: 0,
  });

  // `bulwark soc tail` as sam prints an incident published after it joined, read through the channel.
  const tail = spawnGroup(process.execPath, [CLI, 'soc', 'tail', '--as', sam, '--severity', 'high+'], isolatedEnv({ ...atHome, SYMBIONT_KEY_DIR: samKeys.keyDir, SYMBIONT_ROOT_PUBLIC_KEY: pin }));
  let before: string;
  try {
    before = await incident();
    await untilPrinted(tail, before, 30_000);
    expect(tail.output()).toMatch(new RegExp(`High +policy_violation  ${before}  \\d+ policy denials for agent\\.`));
    expect(tail.output()).not.toContain('refused');
  } finally {
    process.kill(-tail.child.pid!, 'SIGINT');
    await Promise.race([tail.exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  await follower.refresh();
  await follower.stop();
  await samSide.close();
  expect(held.map((k) => k.epoch)).toContain(joined.epoch);

  // Revoked: the key manager drops it from the channel (a new epoch without it).
  const revoked = await bulwark(['keys', 'revoke', sam, '--reason', 'key_compromise', '--as', 'analyst.admin'], 30_000, atHome);
  expect(revoked.code, revoked.stderr).toBe(0);
  const left = await poll(`${sam} out of ${SOC_CHANNEL}`, 20_000, async () => {
    const v = await channel();
    return subscribers(v).includes(sam) ? undefined : v;
  }).catch(() => undefined);
  const after = await incident();

  // The attack: sam reads the SOC stream raw (here through the operator's NATS user: its own
  // credentials are revoked) and tries every epoch key it held on every frame.
  const { store: adminStore } = await openKeyStore(homeEnvironment(homeAt(home), isolatedEnv()), ROOT);
  const creds = (await loadNatsCredentials(adminStore, OPERATOR_USER))!;
  const nc = await connect({ servers: natsUrl, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix });
  const frames = new Map<string, Uint8Array>();
  try {
    const consumer = await jetstream(nc).consumers.get('BULWARK_INCIDENTS', { filter_subjects: 'bulwark.incident.>' });
    await poll(`the frame of incident ${after} on the SOC stream`, 20_000, async () => {
      const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
      for await (const m of batch) {
        const subject = m.headers?.get('ce-subject');
        if (subject !== undefined && m.subject.endsWith(`.${recipientToken(SOC_CHANNEL)}`)) frames.set(subject, m.data);
      }
      return frames.has(after) ? true : undefined;
    });
  } finally {
    await nc.close();
  }
  const raw = await operatorDirectory(natsUrl, adminStore, pin, samSide.provider);
  const openWithHeld = (frame: Uint8Array) => {
    const receiver = new ChannelReceiver({ provider: samSide.provider, directory: raw.directory, channelId: SOC_CHANNEL, keepHistory: true, staleAfterMs: 86_400_000 });
    for (const k of held) receiver.install(k);
    return receiver.open(frame);
  };
  try {
    expect(openWithHeld(frames.get(before)!).ok, 'sam opens what was published while it subscribed').toBe(true);
    expect(openWithHeld(frames.get(after)!), 'sam opens nothing published after its revocation').toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
  } finally {
    await raw.close();
  }
  expect(left, `${sam} is still a subscriber of ${SOC_CHANNEL} after its revocation`).toMatchObject({ reason: 'subscriber_revoked', subject: sam });

  // An agent: the bus refuses it the SOC stream's durables and the ledger's channel epochs, and no epoch is wrapped to it.
  const agentKeys = { keyDir: join(home, 'principals', nonAnalyst.id), credsFile: nonAnalyst.credsFile };
  const agent = await connectAs(nonAnalyst.id, agentKeys.keyDir, agentKeys.credsFile);
  try {
    const receiver = new ChannelReceiver({ provider: agent.provider, directory: agent.directory, channelId: SOC_CHANNEL, keepHistory: true });
    const grant = analystChannelConsumers(nonAnalyst.id)[0]!;
    await expect(startStreamConsumer(agent.bus, receiver, { stream: 'incidents', durable: grant.durable, filterSubject: grant.filter }, async () => undefined, quiet(nonAnalyst.id))).rejects.toMatchObject({ code: expect.stringMatching(/^E_BUS/) as unknown });
    await expect(followChannelEpochs({
      bus: agent.bus, provider: agent.provider, identity: { id: nonAnalyst.id, x25519: agent.identity.x25519 }, directory: agent.directory,
      ledgerPublicKey: agent.directory.lookup(ServicePrincipals.audit)!.ed25519PublicKey, issuer: CHANNEL_ISSUER, issuerKey: directoryIssuerKey(agent.directory, CHANNEL_ISSUER),
      channels: [SOC_CHANNEL], onEpoch: () => undefined, rejections: quiet(nonAnalyst.id), syncIntervalMs: 0, queryTimeoutMs: 3000,
    })).rejects.toThrow();
  } finally {
    await agent.close();
  }
  expect(subscribers(await channel())).not.toContain(nonAnalyst.id);
}

/** A directory read through the operator's NATS user (the raw reader's view of who may publish). */
async function operatorDirectory(natsUrl: string, store: Awaited<ReturnType<typeof openKeyStore>>['store'], pin: string, provider: CryptoProvider): Promise<{ bus: Bus; directory: KvDirectory; close(): Promise<void> }> {
  const creds = (await loadNatsCredentials(store, OPERATOR_USER))!;
  const bus = await connectBus({ url: natsUrl, name: 'soc-raw-reader', maxReconnectAttempts: 0, connectTimeoutMs: 3000, credentials: { jwt: creds.jwt, seed: creds.seed }, inboxPrefix: creds.inboxPrefix });
  const directory = await KvDirectory.open(bus, { provider, rootPublicKey: parseRootPublicKey(pin, 'root.pub') });
  return { bus, directory, close: async () => { await directory.stop(); await bus.close(); } };
}
