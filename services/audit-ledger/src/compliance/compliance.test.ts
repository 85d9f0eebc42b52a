import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newEventId, type AuditEvent, type EventType } from '@bulwark/events';
import { ORIGIN, crypto, openTestLedger, produced, type LedgerFixture } from '../ledger.fixture.js';
import { BUILTIN_FRAMEWORKS, effectiveRetentionDays, loadFramework, parseFramework } from './framework.js';
import { generateComplianceReport } from './report.js';
import { validateCompliance, type ComplianceSource } from './validate.js';

const T = Date.UTC(2026, 5, 1);
const PERIOD = { from: new Date(T), to: new Date(T + 86_400_000) };

function event(eventType: EventType, details: Record<string, unknown>, offset: number): AuditEvent {
  return { eventId: newEventId(), timestamp: T + offset, agentId: 'agent.clinic', eventType, details: details as AuditEvent['details'] };
}

const goodPhi = { classification: 'phi', user_id: 'u1', resource: 'patient/7', purpose: 'treatment', decision: 'allow', minimum_necessary: true };
const { user_id: _dropped, ...withoutUserId } = goodPhi;

describe('compliance frameworks', () => {
  it('loads the three built-in frameworks from their data files', async () => {
    for (const name of BUILTIN_FRAMEWORKS) {
      const framework = await loadFramework(name);
      expect(framework.id).toBe(name);
      expect(framework.requirements.length + framework.accessControls.length).toBeGreaterThan(0);
    }
    expect((await loadFramework('hipaa')).retentionDays).toBe(2190);
    expect(effectiveRetentionDays(365, [await loadFramework('hipaa'), await loadFramework('sox')])).toBe(2555);
  });

  it('rejects bad framework files naming the file and the key', async () => {
    const base = 'id = "x"\nname = "X"\nretention_days = 30\n';
    const req = '[[requirements]]\nid = "r"\ndescription = "d"\n';
    expect(() => parseFramework(`${base}${req}event_types = ["data.acessed"]\n`, 'toml', 'custom.toml')).toThrow(
      'custom.toml: requirements[0].event_types[0]: "data.acessed" is not a known event type',
    );
    expect(() => parseFramework(`${base}${req}event_types = ["data.accessed"]\nrequired_detail = ["a"]\n`, 'toml', 'c.toml')).toThrow('c.toml: requirements[0].required_detail: unknown key');
    expect(() => parseFramework('id = "x"\nname = "X"\nretention_days = 0\n' + req + 'event_types = ["data.accessed"]\n', 'toml', 'c.toml')).toThrow('c.toml: retention_days: must be a whole number from 1 to 36500');
    expect(() => parseFramework('{"id":"x","name":"X","retention_days":5}', 'json', 'c.json')).toThrow('c.json: requirements: a framework must have at least one');
    expect(() => parseFramework('id = ', 'toml', 'c.toml')).toThrow(/^c\.toml: not valid TOML/);
    await expect(loadFramework('missing.toml')).rejects.toThrow('framework file missing.toml: cannot be read (ENOENT)');
    await expect(loadFramework('frameworks.yaml')).rejects.toThrow(/not one of hipaa, gdpr, sox, nor a .toml or .json file/);
  });
});

describe('validateCompliance', () => {
  let fx: LedgerFixture;
  let dir: string;
  let source: ComplianceSource;

  beforeAll(async () => {
    fx = await openTestLedger('compliance', { checkpointEvery: 5 });
    dir = await mkdtemp(join(tmpdir(), 'bulwark-compliance-'));
    source = { db: fx.db, crypto, origin: ORIGIN, logKey: fx.ledger.verifierKey, retentionDays: 2190, now: new Date(T + 2 * 86_400_000) };
    await fx.ledger.append(produced([
      event('data.accessed', goodPhi, 1), // seq 0
      event('data.accessed', withoutUserId, 2), // seq 1: no user id
      event('data.accessed', { ...goodPhi, decision: 'deny' }, 3), // seq 2: denied access logged as accessed
      event('incident.opened', { severity: 'high' }, 4), // seq 3
      event('data.accessed', { classification: 'public' }, 5), // seq 4: not PHI, no requirement applies
      event('data.accessed', { ...goodPhi, user_id: 'u9' }, 2 * 86_400_000), // seq 5: outside the period
    ]));
  });
  afterAll(async () => {
    await fx.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('names the offending seqs, counts per event type, and includes chain and retention status', async () => {
    const report = await validateCompliance(source, await loadFramework('hipaa'), PERIOD);
    expect(report.compliant).toBe(false);
    expect(report.totalEvents).toBe(5);
    expect(report.countsByType).toEqual({ 'data.accessed': 4, 'incident.opened': 1 });
    expect(report.chain).toMatchObject({ ok: true, size: 6 });
    expect(report.retention).toMatchObject({ ok: true, requiredDays: 2190, firstStoredSeq: 0 });
    const byRule = Object.fromEntries(report.findings.map((f) => [f.requirement, f]));
    expect(byRule['phi-access-logging']).toMatchObject({ kind: 'missing detail', seqs: [1], count: 1 });
    expect(byRule['phi-access-authorised']).toMatchObject({ kind: 'access not allowed', seqs: [2] });
    expect(report.findings.map((f) => f.requirement).sort()).toEqual(['phi-access-authorised', 'phi-access-logging']);
    expect(report.requirements.find((r) => r.id === 'breach-detection')).toMatchObject({ events: 1, passed: true });
  });

  it('is compliant when every requirement holds, and not when the retention is too short or the chain is broken', async () => {
    const custom = join(dir, 'clinic.json');
    await writeFile(
      custom,
      JSON.stringify({
        id: 'clinic',
        name: 'Clinic policy',
        retention_days: 365,
        requirements: [{ id: 'incidents', description: 'incidents carry a severity', event_types: ['incident.opened'], required_details: ['severity'], min_events: 1 }],
      }),
    );
    const framework = await loadFramework(custom);
    const ok = await generateComplianceReport(source, framework, PERIOD, 'markdown');
    expect(ok.report.compliant).toBe(true);
    expect(ok.text).toContain('**COMPLIANT**');
    expect(ok.text).toContain('| incident.opened | 1 |');

    const short = await validateCompliance({ ...source, retentionDays: 100 }, framework, PERIOD);
    expect(short.compliant).toBe(false);
    expect(short.findings[0]).toMatchObject({ requirement: 'retention', kind: 'retention' });

    const none = await validateCompliance(source, { ...framework, requirements: [{ ...framework.requirements[0]!, eventTypes: ['keys.rotated'] }] }, PERIOD);
    expect(none.findings[0]).toMatchObject({ kind: 'too few events', message: '0 matching keys.rotated events in the period, at least 1 required' });

    await fx.db.transaction().execute(async (trx) => {
      await trx.updateTable('events').set({ agent_id: 'agent.evil' }).where('seq', '=', 3n).execute();
      const broken = await validateCompliance({ ...source, db: trx as never }, framework, PERIOD);
      expect(broken.compliant).toBe(false);
      expect(broken.chain).toMatchObject({ ok: false, seq: 3 });
      expect(broken.findings.at(-1)).toMatchObject({ kind: 'chain', seqs: [3] });
      await trx.updateTable('events').set({ agent_id: 'agent.clinic' }).where('seq', '=', 3n).execute();
    });
  });

  it('renders markdown with the findings and their seqs', async () => {
    const { text, report } = await generateComplianceReport(source, await loadFramework('hipaa'), PERIOD, 'markdown');
    expect(report.compliant).toBe(false);
    expect(text).toContain('# HIPAA compliance report');
    expect(text).toContain('**NON-COMPLIANT**');
    expect(text).toMatch(/\*\*phi-access-logging\*\* \(missing detail, 1\): data\.accessed events without details\.user_id; seq 1/);
    expect(text).toContain('Chain verification: verified');
  });
});
