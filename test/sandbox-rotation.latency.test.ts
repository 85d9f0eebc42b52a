// The sandbox scheduler rotates its own identity while it schedules (issue 12, "Rotation"):
// `bulwark init` (root namespace), nats-server in operator mode with exactly its configuration,
// PostgreSQL and the real ledger (control batches sealed to the key manager, the policy service
// and the scheduler), the key manager in this process with a rotation interval of ROTATE_MS, the
// policy service in this process (sandboxes allowed), and the real `bulwark-sandbox-scheduler`
// main as a child process (runc) told the same interval. It rotates by itself twice while an
// agent keeps scheduling a workload: every schedule is answered (retried once at most per
// rotation, as a policy decision is at its one reconnect) and recorded in the ledger; restarted,
// it comes back under its latest version (its control batches sealed to each of its versions);
// and its old version, once revoked, is refused.
import { describe, expect, it } from 'vitest';
import { ServicePrincipals } from '@bulwark/bus';
import { skipReason } from '../services/sandbox-scheduler/src/drivers/testing.js';
import { rotatedTo, useServiceWorld } from './service-world.js';

const ROTATE_MS = 5000;
const SERVICE = ServicePrincipals.sandbox;
const POLICY = 'policy sandboxes {\n    allow: allocate(sandbox)\n}\n';
const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const skip = skipReason('runc');
/** How long the agent keeps scheduling after the second rotation is logged. */
const AFTER_MS = 2500;
const world = useServiceWorld({
  schema: 'sandbox_rotation',
  // Control batches sealed to the scheduler too.
  ledger: { controlTo: [ServicePrincipals.keys, ServicePrincipals.policy, SERVICE] },
  keyManager: { rotationIntervalMs: ROTATE_MS },
  policies: [{ text: POLICY, file: 'sandboxes.policy' }],
  ...(skip === undefined ? {} : { skip }),
});

/** One schedule of `/bin/true`: undefined when it ran (exit 0), else why not. */
async function once(): Promise<string | undefined> {
  try {
    const reply = await world().agent.sandbox.schedule({ assessment: LOW, tier: 1, args: ['/bin/true'] }, { timeoutMs: 10_000 });
    return reply.run.exitCode === 0 ? undefined : `exit ${reply.run.exitCode}: ${reply.run.stderr.slice(0, 200)}`;
  } catch (e) {
    return e instanceof Error ? `${(e as { code?: string }).code ?? ''} ${e.message}` : String(e);
  }
}

/** One schedule, retried once 200 ms later if the first got no answer (its one reconnect at a switch). */
async function schedule(retries: string[] = []): Promise<'answered' | 'retried' | string> {
  const first = await once();
  if (first === undefined) return 'answered';
  retries.push(first);
  await new Promise((r) => setTimeout(r, 200));
  return (await once()) ?? 'retried';
}

async function scheduledOf(id: string): Promise<number> {
  const rows = await world().db.selectFrom('events').select(['details']).where('agent_id', '=', id).where('event_type', '=', 'sandbox.scheduled').execute();
  return rows.filter((r) => ((typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as { outcome?: string }).outcome !== 'denied').length;
}

describe.skipIf(skip !== undefined)(`the sandbox scheduler rotates its own identity while it schedules${skip === undefined ? '' : ` (skipped: ${skip})`}`, () => {
  let latest = 0;

  it('rotates by itself twice while an agent keeps scheduling: every schedule answered and recorded, the same process', async () => {
    const { b, admin, agentId, start, serving, stop } = world();
    const scheduler = await start('sandbox', { SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    try {
      await serving(scheduler);
      const pid = scheduler.proc.pid;
      let answered = 0;
      let retried = 0;
      const lost: string[] = [];
      const retries: string[] = [];
      // Until it rotated twice and kept scheduling for AFTER_MS under its latest version.
      const deadline = Date.now() + 2 * ROTATE_MS + 24_000;
      let secondAt = Number.POSITIVE_INFINITY;
      while (Date.now() < secondAt + AFTER_MS) {
        if (Date.now() > deadline) break;
        if (rotatedTo(scheduler.output()).length >= 2 && secondAt === Number.POSITIVE_INFINITY) secondAt = Date.now();
        const outcome = await schedule(retries);
        if (outcome === 'answered') answered++;
        else if (outcome === 'retried') retried++;
        else lost.push(outcome);
        await new Promise((r) => setTimeout(r, 100));
      }
      // A rotation whose new entry a caller already sees is logged once switched (settle and reconnect, about 1.5 s later):
      // the retries are counted against the rotations once the key manager's active version is the last one logged.
      await expect.poll(async () => (await admin.keys.get(SERVICE)).activeVersion === rotatedTo(scheduler.output()).at(-1), { timeout: 10_000, interval: 100 }).toBe(true);
      const versions = rotatedTo(scheduler.output());
      if (lost.length > 0) process.stdout.write(`server: ${b.log().split('\n').filter((l) => /violation/i.test(l)).slice(0, 5).join('\n')}\n`);
      process.stdout.write(`${JSON.stringify({ figure: 'sandbox_rotation', rotations: versions.length, versions, answered, retried, lost: lost.length, why: lost, retriedBecause: retries })}\n`);
      expect(versions.length, scheduler.output()).toBeGreaterThanOrEqual(2);
      expect(lost, scheduler.output()).toEqual([]);
      // A retry only at a switch, at most one per rotation: the reply to a schedule in flight when the
      // agent's directory moves to the new entry is refused by its session (E_UNKNOWN_SENDER; the README's limits).
      expect(retried).toBeLessThanOrEqual(versions.length);
      expect(answered).toBeGreaterThan(10);
      expect(scheduler.proc.exitCode).toBeNull();
      expect(scheduler.proc.pid).toBe(pid);
      // Every schedule that ran is in the ledger, sealed across the switches.
      await expect.poll(() => scheduledOf(agentId), { timeout: 10_000 }).toBeGreaterThanOrEqual(answered + retried);
    } finally {
      await stop(scheduler);
      latest = (await admin.keys.get(SERVICE)).activeVersion ?? 0;
    }
  }, 120_000);

  it('comes back after a restart under its latest version, and its old version, once revoked, is refused', async () => {
    const { start, serving, stop, revokeFirstVersion } = world();
    expect(latest).toBeGreaterThanOrEqual(3);
    const scheduler = await start('sandbox');
    try {
      await serving(scheduler);
      // Logged once its rotation checks start, which may be just after it answers its first ping.
      await expect.poll(() => scheduler.output(), { timeout: 10_000 }).toMatch(new RegExp(`"version":${latest}[^\\n]*key rotation: checked against the key manager`));
      expect(await schedule()).toMatch(/^(answered|retried)$/);
      expect(await schedule()).toBe('answered');
      await revokeFirstVersion(SERVICE);
      expect(await schedule()).toBe('answered');
    } finally {
      await stop(scheduler);
    }
  }, 90_000);
});
