// The incident response service rotates its own identity while it turns violations into incidents
// (issue 12, "Rotation"): `bulwark init` (root namespace), nats-server in operator mode with exactly
// its configuration, PostgreSQL and the real ledger, whose full stream goes out on the channel
// ledger.full; the key manager in this process with a rotation interval of ROTATE_MS and the
// channels ledger.full and soc.incidents; the policy service in this process; and the real
// `bulwark-incident-response` main as a child process told the same interval. It rotates by
// itself twice while agents, one after the other, are denied by a policy rule (one incident each).
// At each rotation the key manager wraps both channels' next epochs to its new key: it must open
// them (the live identity, the key ring's pick by version) to keep reading the ledger and keep
// publishing findings. Every incident must reach the ledger and the SOC channel, where an analyst
// opens them (confirmed by the incident service over its session); after a restart it rebuilds
// every incident from epochs wrapped to all its versions; and frames under its old version,
// once revoked, are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandClient, Commands, LEDGER_PRINCIPAL, ServicePrincipals, SOC_CHANNEL } from '@bulwark/bus';
import type { BulwarkClient } from '@bulwark/client';
import { readSocStream, type SocStreamReader } from '../libs/cli/src/commands/soc-channel.js';
import { ADMIN, LEDGER_CHANNEL, quiet, rotatedTo, useServiceWorld } from './service-world.js';

const ROTATE_MS = 5000;
const SERVICE = ServicePrincipals.incident;
const AGENTS = 6;
const POLICY = 'policy vault {\n    allow: read(vault)\n    deny: write(vault)\n}\n';
const world = useServiceWorld({
  schema: 'incident_rotation',
  // The ledger's full stream out on ledger.full, its epochs wrapped to the incident service.
  ledger: { republishTo: SERVICE, channel: LEDGER_CHANNEL },
  keyManager: {
    rotationIntervalMs: ROTATE_MS,
    // As `bulwark up` configures them (SYMBIONT_KEY_CHANNELS).
    channels: [
      { channel: LEDGER_CHANNEL, subscribers: [LEDGER_PRINCIPAL, SERVICE] },
      { channel: SOC_CHANNEL, subscribers: [SERVICE, ADMIN] },
    ],
  },
  policies: [{ text: POLICY, file: 'vault.policy' }],
});

let soc: SocStreamReader | undefined;
let commands: CommandClient;
const agents: { id: string; client: BulwarkClient }[] = [];
/** Agent ids named by the findings the analyst opened on soc.incidents (confirmed by the incident service). */
const opened = new Map<string, number>();
const refused: string[] = [];

/** `bulwark.incident.list` as the analyst: the incidents the service holds. */
async function listIncidents(): Promise<unknown[]> {
  const reply = JSON.parse(new TextDecoder().decode(await commands.request(Commands.incident.list, new TextEncoder().encode('{}'), { timeoutMs: 5000, idempotent: true }))) as { incidents: unknown[] };
  return reply.incidents;
}

/** One write the policy denies by its rule (a `policy.violation`: one incident per agent). */
async function violate(agent: { client: BulwarkClient }): Promise<void> {
  const decision = await agent.client.policy.evaluate({ action: 'write', resource: 'vault' });
  expect(decision.decision).toBe('Deny');
}

beforeAll(async () => {
  const { b, directory } = world();
  for (let i = 0; i < AGENTS; i++) agents.push(await world().addAgent({ decisionTimeoutMs: 5000 }));
  // The analyst on soc.incidents: each finding opened under the epoch key wrapped to it, then
  // confirmed by the incident service (`bulwark.incident.list`, over the analyst's session to it).
  const adminId = await b.identity(ADMIN);
  const adminBus = await b.connect(adminId.id, 'soc-analyst');
  commands = new CommandClient(adminBus, { sessions: { provider: b.provider, self: adminId, directory }, rejections: quiet(ADMIN) });
  soc = await readSocStream({
    bus: adminBus,
    provider: b.provider,
    identity: adminId,
    x25519SecretKey: (v) => (v === adminId.version ? adminId.x25519.secretKey : undefined),
    directory,
    call: async (subject, body) => JSON.parse(new TextDecoder().decode(await commands.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 5000, idempotent: true }))) as unknown,
    onFinding: (f) => {
      for (const a of agents) if (JSON.stringify(f.finding).includes(a.id)) opened.set(a.id, (opened.get(a.id) ?? 0) + 1);
    },
    onRefused: (why) => void refused.push(why),
    syncIntervalMs: 1000,
  });
}, 60_000);

afterAll(async () => {
  await soc?.stop();
});

describe('the incident response service rotates its own identity while it turns violations into incidents', () => {
  let latest = 0;
  /** The incidents the first run opened (one per agent that violated). */
  let incidentCount = 0;

  it('rotates by itself twice during a burst of violations: every incident in the ledger and opened on soc.incidents, the last ones under epochs wrapped to its newest key', async () => {
    const { admin, start, serving, stop, decisionsOf } = world();
    const rows = (eventType: string, id: string) => decisionsOf(id, eventType);
    const incidents = await start('incident', { SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    await serving(incidents);
    // Stopped, and its latest version noted, even when a check fails: the restart below stands on its own.
    try {
      const pid = incidents.proc.pid;
      // Agent 0 before any rotation, then one agent after the other while it rotates, the last one after its second switch.
      const started = Date.now();
      let next = 0;
      const used = new Set<string>();
      while (rotatedTo(incidents.output()).length < 2) {
        if (Date.now() > started + 4 * ROTATE_MS + 20_000) break;
        const i = Math.min(next, AGENTS - 2);
        await violate(agents[i]!);
        used.add(agents[i]!.id);
        if (Date.now() - started > (next + 1) * 2000) next++;
        await new Promise((r) => setTimeout(r, 250));
      }
      const versions = rotatedTo(incidents.output());
      expect(versions.length, incidents.output()).toBeGreaterThanOrEqual(2);
      // The channels' epochs re-wrapped to its newest version, then a burst by the last agent.
      const last = agents[AGENTS - 1]!;
      for (let k = 0; k < 5; k++) await violate(last);
      used.add(last.id);
      incidentCount = used.size;
      for (const id of used) await expect.poll(() => rows('incident.opened', id), { timeout: 20_000, message: `${id}'s incident in the ledger\n${incidents.output()}` }).toBe(1);
      for (const id of used) await expect.poll(() => opened.has(id), { timeout: 20_000, message: `${id}'s finding opened on soc.incidents (${refused.join('; ')})\n${incidents.output()}` }).toBe(true);
      process.stdout.write(`${JSON.stringify({ figure: 'incident_rotation', rotations: versions.length, versions, incidents: used.size, opened: opened.size, refused: refused.length })}\n`);
      expect(incidents.output()).not.toMatch(/ledger reader halted|holds no key for epoch/);
      // An epoch wrapped to its new key can be read a moment before its own rotation holds that key
      // (the key manager re-keys as soon as the rotation is committed): each such one is opened at the switch.
      const unreadable = incidents.output().match(/could not be opened with the keys it holds/g)?.length ?? 0;
      const reopened = [...incidents.output().matchAll(/"opened":(\d+)[^\n]*identity switched/g)].reduce((n, m) => n + Number(m[1]), 0);
      expect(reopened, incidents.output()).toBeGreaterThanOrEqual(unreadable);
      expect(incidents.proc.exitCode).toBeNull();
      expect(incidents.proc.pid).toBe(pid);
      const view = await admin.keys.get(SERVICE);
      expect(view.activeVersion).toBeGreaterThanOrEqual(versions.at(-1)!);
      // Both channels' current epochs are wrapped to a version it rotated to.
      for (const channel of [LEDGER_CHANNEL, SOC_CHANNEL]) {
        const epoch = await admin.keys.channel({ action: 'get', channel });
        const mine = epoch.subscribers.find((s) => s.id === SERVICE);
        expect(mine?.keyVersion, channel).toBeGreaterThanOrEqual(2);
      }
    } finally {
      await stop(incidents);
      latest = (await admin.keys.get(SERVICE)).activeVersion ?? 0;
    }
  }, 120_000);

  it('comes back after a restart under its latest version with every incident rebuilt from epochs wrapped to each of its versions', async () => {
    const { start, serving, stop } = world();
    expect(latest).toBeGreaterThanOrEqual(3);
    const incidents = await start('incident');
    await serving(incidents);
    const rebuilt = /"incidents":(\d+)[^\n]*incident state rebuilt from the ledger/.exec(incidents.output());
    expect(incidentCount).toBeGreaterThanOrEqual(3);
    expect(Number(rebuilt?.[1]), incidents.output()).toBe(incidentCount);
    expect(incidents.output()).not.toMatch(/could not be opened with the keys it holds/);
    expect(incidents.output()).toMatch(new RegExp(`"version":${latest}[^\\n]*key rotation: checked against the key manager`));
    expect(incidents.output()).not.toMatch(/ledger reader halted/);
    // Still answering an analyst over a fresh session under its latest version.
    expect((await listIncidents()).length).toBe(Number(rebuilt![1]));
    await stop(incidents);
  }, 90_000);

  it('refuses frames under its old version once revoked', async () => {
    const { start, serving, stop, revokeFirstVersion } = world();
    const incidents = await start('incident');
    await serving(incidents);
    await revokeFirstVersion(SERVICE);
    // The service under its current version still answers.
    expect((await listIncidents()).length).toBeGreaterThanOrEqual(3);
    await stop(incidents);
  }, 60_000);
});
