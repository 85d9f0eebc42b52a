// A service rotates its own identity while it keeps serving (issue 12, "Rotation"): `bulwark init`
// (root namespace), nats-server in operator mode with exactly its configuration, PostgreSQL and the
// real ledger (control batches sealed to the key manager and the policy service), the key manager
// in this process with a rotation interval of ROTATE_MS, and the real `bulwark-policy` main as a
// child process told the same interval (SYMBIONT_KEY_ROTATION_INTERVAL_MS). Nobody asks it to
// rotate: it learns from `keys.get` that its key is due and rotates by itself, again and again,
// while an agent asks it for decisions every 100 ms. Then it is restarted and must come back under
// its latest version (replaying the ledger's control batches sealed to its older keys); and the
// attack: frames under its old version, once revoked, are refused.
import { describe, expect, it } from 'vitest';
import { ServicePrincipals } from '@bulwark/bus';
import { loadIdentity } from '@bulwark/keystore';
import { rotatedTo, SERVICE, usePolicyWorld } from './service-world.js';

const ROTATE_MS = 5000;
const OVERDUE_GRACE_MS = 2000;
/** How long the agent keeps asking after the second rotation is logged (its switch to the new NATS user follows the line). */
const AFTER_MS = 2500;
const world = usePolicyWorld({ schema: 'svc_rotation', keyManager: { rotationIntervalMs: ROTATE_MS, rotationOverdueGraceMs: OVERDUE_GRACE_MS } });

describe("a service rotates its own identity on the interval while it serves", () => {
  let latest = 0;

  it('rotates by itself (twice) while an agent keeps asking it: no call lost, the new version active in the key manager and the directory, the process never restarted', async () => {
    const { admin, agentId, directory, startPolicy, serving, decide, decisionsOf, stop } = world();
    const policy = await startPolicy({ SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    await serving(policy);
    // A control batch the ledger seals to the version the service has now: a restart under a
    // later version must still open it (its earlier keys, previousX25519) to rebuild its state.
    await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');
    const pid = policy.proc.pid;
    let answered = 0;
    let slowestMs = 0;
    const lost: string[] = [];
    // Until it rotated twice and kept answering for AFTER_MS under its latest version.
    const deadline = Date.now() + 2 * ROTATE_MS + 24_000;
    let secondAt = Number.POSITIVE_INFINITY;
    while (Date.now() < secondAt + AFTER_MS) {
      if (Date.now() > deadline) break;
      if (rotatedTo(policy.output()).length >= 2 && secondAt === Number.POSITIVE_INFINITY) secondAt = Date.now();
      const outcome = await decide();
      if (outcome.failure === undefined) answered++;
      else lost.push(outcome.failure);
      slowestMs = Math.max(slowestMs, outcome.ms);
      await new Promise((r) => setTimeout(r, 100));
    }
    const versions = rotatedTo(policy.output());
    process.stdout.write(`${JSON.stringify({ figure: 'service_rotation', rotations: versions.length, versions, answered, lost: lost.length, slowestMs, why: lost })}\n`);
    expect(versions.length, policy.output()).toBeGreaterThanOrEqual(2);
    expect(lost, policy.output()).toEqual([]);
    expect(policy.proc.exitCode).toBeNull();
    expect(policy.proc.pid).toBe(pid);
    latest = versions.at(-1)!;
    const view = await admin.keys.get(SERVICE);
    // It may have rotated once more since the last line was read: the latest in the book is at least ours.
    expect(view.activeVersion).toBeGreaterThanOrEqual(latest);
    latest = view.activeVersion!;
    for (const v of view.versions.filter((x) => x.version < latest)) expect(v.state).toBe('verify_only');
    await expect.poll(() => directory.lookup(SERVICE)?.keyVersion, { timeout: 5000 }).toBe(latest);
    // Every decision answered reached the ledger, sealed across the switches.
    await expect.poll(() => decisionsOf(agentId), { timeout: 10_000 }).toBe(answered);
    await stop(policy);
    latest = (await admin.keys.get(SERVICE)).activeVersion!;
  }, 90_000);

  it('comes back after a restart under its latest version (and does not rotate before it is due)', async () => {
    const { directory, startPolicy, serving, decide, stop, serviceStore } = world();
    expect(latest).toBeGreaterThanOrEqual(3);
    const policy = await startPolicy({});
    await serving(policy);
    expect((await decide()).failure).toBeUndefined();
    expect((await decide()).failure).toBeUndefined();
    expect(policy.output()).toMatch(/"policies":1[^\n]*policy state rebuilt from the ledger/);
    expect(policy.output()).toMatch(new RegExp(`"version":${latest}[^\\n]*key rotation: checked against the key manager`));
    expect(rotatedTo(policy.output())).toEqual([]);
    expect((await loadIdentity(await serviceStore(), SERVICE)).version).toBe(latest);
    expect(directory.lookup(SERVICE)?.keyVersion).toBe(latest);
    await stop(policy);
  }, 60_000);

  it('refuses frames under its old version once revoked', async () => {
    const { admin, revokeFirstVersion } = world();
    // Version 1's NATS user is init's, recorded at the adoption by the proof of its nkey.
    await revokeFirstVersion(SERVICE);
    // The key manager's own answer under the current version is unaffected.
    expect((await admin.keys.get(SERVICE)).activeVersion).toBe(latest);
  }, 30_000);

  it('records a version its holder did not rotate in time as overdue, once, and `keys list` shows it', async () => {
    const { b, admin, db, km } = world();
    // The service is stopped: its latest version ages past the interval and the grace.
    await expect.poll(async () => (await admin.keys.get(SERVICE)).rotationOverdue, { timeout: ROTATE_MS + OVERDUE_GRACE_MS + 10_000, interval: 250 }).toBe(true);
    await new Promise((r) => setTimeout(r, 1500)); // several more checks
    const rows = await db.selectFrom('events').select(['details']).where('agent_id', '=', SERVICE).where('event_type', '=', 'keys.rotation_overdue').execute();
    const versions = rows.map((r) => (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as { version: number; by: string });
    // One event for the latest version; none for the versions it rotated away in time.
    expect(versions.map((d) => d.version)).toEqual([latest]);
    expect(versions[0]!.by).toBe(ServicePrincipals.keys);
    const listed = await b.bulwark(['keys', 'list', '--as', 'analyst.admin', '--nats', b.url]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${SERVICE.replace('.', '\\.')}  active v${latest} .*rotation OVERDUE`));
    // The key manager rotated its own identity on the same interval meanwhile (its keys in its store, as init leaves them):
    // the real ledger committed its keys.rotated, produced by svc.key-manager, and it kept serving (above).
    const own = await db.selectFrom('events').select(['producer']).where('agent_id', '=', ServicePrincipals.keys).where('event_type', '=', 'keys.rotated').execute();
    expect(own.length).toBeGreaterThanOrEqual(1);
    expect(new Set(own.map((r) => r.producer))).toEqual(new Set([ServicePrincipals.keys]));
    // Committed, then switched a moment later: one behind at most.
    expect(km.ownVersion).toBeGreaterThanOrEqual(own.length);
  }, 30_000);
});
