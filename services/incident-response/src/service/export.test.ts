import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { LedgerEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../rules/load.js';
import { exportFindings, parseExportQuery } from './export.js';
import { IncidentState } from './state.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/ocsf-1.8.0-detection-finding.schema.json', import.meta.url), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
const rules = loadRules([{ file: 'r.yaml', text: '- rule: r\n  condition: evt.type = security.violation\n  output: "%evt.agent"\n  priority: HIGH\n- rule: l\n  condition: evt.type = auth.failed\n  output: "%evt.agent"\n  priority: LOW\n' }]);
const ev = (seq: number, timestamp: number, producer: string, eventType: string, details: Record<string, unknown>, agentId = 'agent.a'): LedgerEvent =>
  ({ seq, eventId: `e${seq}`, timestamp, producer, agentId, eventType, details, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) }) as LedgerEvent;

function state(): IncidentState {
  const s = new IncidentState(rules);
  s.apply(ev(0, 1_000, 'svc.policy', 'security.violation', {}));
  s.apply(ev(1, 2_000, 'svc.policy', 'auth.failed', {}, 'agent.b'));
  s.apply(ev(2, 9_000, 'svc.policy', 'security.violation', {}, 'agent.c'));
  const [a, b, c] = s.all().map((r) => r.incident.id);
  s.apply(ev(3, 1_100, 'svc.incident-response', 'incident.opened', { incidentId: a! }));
  s.apply(ev(4, 2_100, 'svc.incident-response', 'incident.opened', { incidentId: b! }));
  s.apply(ev(5, 9_100, 'svc.incident-response', 'incident.opened', { incidentId: c! }));
  s.apply(ev(6, 3_000, 'svc.incident-response', 'incident.resolved', { incidentId: a!, by: 'analyst.ann' }));
  return s;
}

describe('the SOC export', () => {
  it('gives one schema-valid Detection Finding per incident in range, at its latest lifecycle state', () => {
    const findings = exportFindings(state().all(), parseExportQuery({ since: 0, until: 5_000 }, 10_000));
    expect(findings.map((f) => [f.severity, f.activity_name, f.time])).toEqual([
      ['High', 'Close', 3_000],
      ['Low', 'Create', 2_100],
    ]);
    for (const f of findings) expect(validate(JSON.parse(JSON.stringify(f))), JSON.stringify(validate.errors)).toBe(true);
    expect(exportFindings(state().all(), parseExportQuery({ since: 0, severity: 'high' }, 10_000)).map((f) => f.severity)).toEqual(['High', 'High']);
  });

  it('refuses a bad range or severity with what is wrong', () => {
    expect(() => parseExportQuery({ since: 'yesterday' }, 0)).toThrow(/since must be a time in ms/);
    expect(() => parseExportQuery({ since: 5, until: 5 }, 0)).toThrow(/must be after since/);
    expect(() => parseExportQuery({ since: 1, severity: 'urgent' }, 10)).toThrow(/severity must be one of/);
    expect(() => parseExportQuery([], 0)).toThrow(/must be an object/);
  });
});
