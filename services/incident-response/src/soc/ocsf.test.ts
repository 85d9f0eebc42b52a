import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../incidents/security-event.js';
import { cloudEventHeaders, readCloudEventHeaders } from './cloudevents.js';
import { detectionFinding } from './ocsf.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/ocsf-1.8.0-detection-finding.schema.json', import.meta.url), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

const incident = (): SecurityEvent => ({
  id: '0190a1b2-c3d4-8e5f-a6b7-c8d9e0f1a2b3',
  timestamp: new Date(1_700_000_000_000).toISOString(),
  severity: 'high',
  category: 'policy_violation',
  description: '20 policy denials for agent.a1 within 10s',
  affected_components: ['agent.a1'],
  recommended_actions: ['contain the agent'],
  rule: 'policy_deny_burst',
  key: 'agent.a1',
  agentId: 'agent.a1',
  status: 'open',
  evidence: { seqs: [3, 4, 5], count: 3, firstSeq: 3, lastSeq: 5, firstAt: 1_700_000_000_000, lastAt: 1_700_000_001_000 },
});

describe('the OCSF 1.8.0 Detection Finding', () => {
  it('validates against the schema built from the OCSF documentation', () => {
    for (const activity of ['create', 'update', 'close'] as const) {
      const finding = detectionFinding(incident(), activity, 1_700_000_002_000, [{ action: 'policy.contain', outcome: 'done' }]);
      expect(validate(finding), JSON.stringify(validate.errors)).toBe(true);
    }
    expect(detectionFinding(incident(), 'create', 1)).toMatchObject({ class_uid: 2004, category_uid: 2, type_uid: 200401, severity_id: 4, status_id: 1 });
  });

  it('the schema refuses a finding without a required attribute or with a value outside its enum', () => {
    const good = detectionFinding(incident(), 'create', 1);
    for (const key of ['activity_id', 'category_uid', 'class_uid', 'finding_info', 'metadata', 'severity_id', 'time', 'type_uid']) {
      const bad: Record<string, unknown> = { ...good };
      delete bad[key];
      expect(validate(bad), key).toBe(false);
    }
    expect(validate({ ...good, severity_id: 7 })).toBe(false);
    expect(validate({ ...good, class_uid: 2001 })).toBe(false);
    expect(validate({ ...good, finding_info: { title: 'x' } })).toBe(false);
    expect(validate({ ...good, metadata: { version: '1.8.0' } })).toBe(false);
  });
});

describe('CloudEvents binary mode headers', () => {
  it('carries the required attributes and reads them back', () => {
    const h = cloudEventHeaders({ id: 'i.1', type: 'dev.bulwark.incident.detection_finding.create', source: 'urn:x', time: '2026-12-01T00:00:00.000Z' });
    expect(h).toMatchObject({ 'ce-specversion': '1.0', 'ce-id': 'i.1', 'ce-datacontenttype': 'application/json' });
    expect(readCloudEventHeaders((n) => h[n])).toMatchObject({ id: 'i.1', source: 'urn:x' });
    expect(readCloudEventHeaders((n) => (n === 'ce-specversion' ? '0.3' : h[n]))).toBeUndefined();
    expect(readCloudEventHeaders((n) => (n === 'ce-id' ? undefined : h[n]))).toBeUndefined();
  });
});
