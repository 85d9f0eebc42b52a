// A rotation requested from outside the holder's process (issue 12, "Rotation"): the world of
// service-world.ts (`bulwark init`, nats-server in operator mode, PostgreSQL and
// the real ledger, the key manager in this process, the real `bulwark-policy` main as a child
// process), but the key manager's rotation interval is an hour, so nothing is due by age. The
// policy service enters the key book by its first rotation (init's keys are older than its own
// 1 s interval), then an administrator runs `bulwark keys rotate svc.policy --reason compromise`:
// the service, checking every SYMBIONT_KEY_ROTATION_CHECK_MS, rotates within seconds while an
// agent keeps asking it for decisions, and its old version stops verifying just after.
import { describe, expect, it } from 'vitest';
import { createBulwarkClient } from '@bulwark/client';
import { loadIdentity } from '@bulwark/keystore';
import { quiet, rotatedTo, SERVICE, usePolicyWorld } from './service-world.js';

/** The key manager's interval: nothing comes due by age during the test. */
const KM_INTERVAL_MS = 3_600_000;
const CHECK_MS = 300;
const world = usePolicyWorld({ schema: 'svc_rotation_req', keyManager: { rotationIntervalMs: KM_INTERVAL_MS } });

/** The `keys.rotated` fact the ledger committed for `version` of the service. */
async function rotatedFact(version: number): Promise<{ trigger: string; by: string } | undefined> {
  const rows = await world().db.selectFrom('events').select(['details']).where('agent_id', '=', SERVICE).where('event_type', '=', 'keys.rotated').execute();
  return rows.map((r) => (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as { version: number; trigger: string; by: string }).find((d) => d.version === version);
}

describe('a service rotates its own identity when an administrator requests it', () => {
  it('rotates within seconds of `bulwark keys rotate svc.policy --reason compromise` while it keeps answering; then its old version stops verifying', async () => {
    const { b, admin, agentId, directory, startPolicy, serving, decide, decisionsOf, stop, serviceStore } = world();
    const policy = await startPolicy({ SYMBIONT_KEY_ROTATION_INTERVAL_MS: '1000', SYMBIONT_KEY_ROTATION_CHECK_MS: String(CHECK_MS) });
    await serving(policy);
    // Its first rotation: init's keys are older than its own interval (not in the key book yet, so its own clock judges).
    await expect.poll(() => rotatedTo(policy.output()), { timeout: 20_000, interval: 100 }).toEqual([2]);
    // Its switch to the new NATS user (one reconnect) follows the log line: registered once it answers again.
    await expect.poll(() => directory.lookup(SERVICE)?.keyVersion, { timeout: 5000 }).toBe(2);
    await new Promise((r) => setTimeout(r, 2000));
    await serving(policy);
    // A call meeting no responder while it reconnects is sent again within its timeout (libs/bus rpc-client).
    await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');
    // In the book now: due by age only in an hour.
    const before = await admin.keys.get(SERVICE);
    expect(before).toMatchObject({ activeVersion: 2, rotationDue: false, rotationRequested: null });
    await new Promise((r) => setTimeout(r, 3 * CHECK_MS));
    expect(rotatedTo(policy.output())).toEqual([2]);

    let answered = 0;
    let slowestMs = 0;
    const lost: string[] = [];
    let asking = true;
    const loop = (async () => {
      while (asking) {
        const outcome = await decide();
        if (outcome.failure === undefined) answered++;
        else lost.push(outcome.failure);
        slowestMs = Math.max(slowestMs, outcome.ms);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    const asked = await b.bulwark(['keys', 'rotate', SERVICE, '--reason', 'compromise', '--as', 'analyst.admin', '--nats', b.url]);
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.stdout).toMatch(new RegExp(`^rotation of ${SERVICE.replace('.', '\\.')} v2 requested \\(compromise\\) by analyst\\.admin at \\S+; its holder rotates at its next check, then the old version stops verifying\n`));
    await expect.poll(() => rotatedTo(policy.output()), { timeout: 10_000, interval: 50 }).toEqual([2, 3]);
    const rotatedMs = Date.now() - t0;
    // Answered as requested (trigger on_demand), not by age.
    expect(await rotatedFact(3)).toMatchObject({ trigger: 'on_demand', by: SERVICE });
    // The compromise: once it rotated, the minimum passes version 2 (a fact of the key manager's).
    await expect.poll(async () => (await admin.keys.get(SERVICE)).minVerifyVersion, { timeout: 10_000, interval: 100 }).toBe(3);
    const raisedMs = Date.now() - t0;
    const view = await admin.keys.get(SERVICE);
    expect(view).toMatchObject({ activeVersion: 3, rotationRequested: null, rotationDue: false });
    expect(view.versions.find((v) => v.version === 2)?.verifies).toBe(false);
    // It keeps answering after the raise (under version 3).
    await new Promise((r) => setTimeout(r, 1000));
    asking = false;
    await loop;
    process.stdout.write(`${JSON.stringify({ figure: 'requested_rotation', checkMs: CHECK_MS, rotatedMs, raisedMs, answered, lost: lost.length, slowestMs, why: lost })}\n`);
    expect(rotatedMs, policy.output()).toBeLessThan(5000);
    expect(lost, policy.output()).toEqual([]);
    expect(answered).toBeGreaterThan(10);
    // Every decision answered reached the ledger, sealed across the switch and the raise.
    await expect.poll(() => decisionsOf(agentId), { timeout: 10_000 }).toBe(answered);
    // Version 2's keys (held by whoever compromised them) are refused by the key manager now.
    const thief = createBulwarkClient({ bus: await b.connect('analyst.admin', 'v2-holder'), sessions: { provider: b.provider, self: await loadIdentity(await serviceStore(), SERVICE, 2), directory }, rejections: quiet(SERVICE), adminTimeoutMs: 2000 });
    await expect(thief.keys.get(SERVICE)).rejects.toThrow();
    await stop(policy);
  }, 120_000);
});
