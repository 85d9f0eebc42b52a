/**
 * The OCSF 1.8.0 Detection Finding (class 2004, category 2 Findings) of an incident: what the
 * SOC stream carries (DESIGN §7). The shape is checked against
 * `schemas/ocsf-1.8.0-detection-finding.schema.json` in the tests.
 */
import type { SecurityEvent } from '../incidents/security-event.js';
import type { Severity } from '../rules/load.js';

export const OCSF_VERSION = '1.8.0';
export const DETECTION_FINDING_CLASS = 2004;

/** OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical. */
const SEVERITY_ID: Readonly<Record<Severity, { id: number; name: string }>> = {
  info: { id: 1, name: 'Informational' },
  low: { id: 2, name: 'Low' },
  medium: { id: 3, name: 'Medium' },
  high: { id: 4, name: 'High' },
  critical: { id: 5, name: 'Critical' },
};

/** OCSF status_id: 1 New, 2 In Progress, 4 Resolved. */
const STATUS = { open: { id: 1, name: 'New' }, acknowledged: { id: 2, name: 'In Progress' }, resolved: { id: 4, name: 'Resolved' } } as const;

export type FindingActivity = 'create' | 'update' | 'close';
const ACTIVITY = { create: { id: 1, name: 'Create' }, update: { id: 2, name: 'Update' }, close: { id: 3, name: 'Close' } } as const;

export interface DetectionFinding {
  readonly [k: string]: unknown;
  readonly class_uid: 2004;
  readonly type_uid: number;
  readonly severity_id: number;
}

export function detectionFinding(incident: SecurityEvent, activity: FindingActivity, now: number, actions: readonly { action: string; outcome: string }[] = []): DetectionFinding {
  const severity = SEVERITY_ID[incident.severity];
  const status = STATUS[incident.status];
  const a = ACTIVITY[activity];
  const e = incident.evidence;
  return {
    activity_id: a.id,
    activity_name: a.name,
    category_uid: 2,
    category_name: 'Findings',
    class_uid: DETECTION_FINDING_CLASS,
    class_name: 'Detection Finding',
    type_uid: DETECTION_FINDING_CLASS * 100 + a.id,
    type_name: `Detection Finding: ${a.name}`,
    severity_id: severity.id,
    severity: severity.name,
    status_id: status.id,
    status: status.name,
    time: now,
    start_time: e.firstAt,
    end_time: e.lastAt,
    count: Math.max(1, e.count),
    is_alert: incident.severity !== 'info' && incident.severity !== 'low',
    message: incident.description,
    finding_info: {
      uid: incident.id,
      title: `${incident.rule}: ${incident.description}`.slice(0, 512),
      desc: incident.description,
      types: [incident.category],
      created_time: Date.parse(incident.timestamp),
      first_seen_time: e.firstAt,
      last_seen_time: e.lastAt,
      // type_id 2 = Behavioral (rules over event streams).
      analytic: { name: incident.rule, uid: incident.rule, type_id: 2, type: 'Behavioral' },
    },
    metadata: { version: OCSF_VERSION, uid: incident.id, product: { name: 'Bulwark incident response', vendor_name: 'Bulwark', version: '0.1.0' } },
    resources: incident.affected_components.map((uid) => ({ uid, type: uid.split('.')[0] ?? 'principal', name: uid })),
    evidences: [{ data: { ledger_seqs: e.seqs.slice(0, 1000), count: e.count, first_seq: e.firstSeq, last_seq: e.lastSeq } }],
    ...(incident.recommended_actions.length === 0 ? {} : { remediation: { desc: incident.recommended_actions.join('; ') } }),
    unmapped: { bulwark: { category: incident.category, key: incident.key, actions } },
  };
}

/** What a finding claims about its incident that the incident service's record must say too (`findingMismatch`). */
export interface IncidentFacts {
  readonly id: string;
  readonly severity: string;
  readonly category: string;
  readonly rule: string;
  readonly description: string;
  readonly timestamp: string;
}

/**
 * Why a Detection Finding read off the SOC stream does not describe `incident` (the incident
 * service's own record, from an authenticated `bulwark.incident.list`), or undefined when its
 * lasting facts agree: id, severity, category, rule, description, creation time. A channel frame
 * is authenticated by the epoch key alone (any subscriber of the epoch could have written it),
 * so a reader prints a finding only once the service confirms it.
 */
export function findingMismatch(finding: Readonly<Record<string, unknown>>, incident: IncidentFacts): string | undefined {
  const info = (finding['finding_info'] ?? {}) as Record<string, unknown>;
  const analytic = (info['analytic'] ?? {}) as Record<string, unknown>;
  const bulwark = (((finding['unmapped'] ?? {}) as Record<string, unknown>)['bulwark'] ?? {}) as Record<string, unknown>;
  const severity = SEVERITY_ID[incident.severity as Severity];
  const checks: [string, unknown, unknown][] = [
    ['finding_info.uid', info['uid'], incident.id],
    ['severity', finding['severity'], severity?.name],
    ['severity_id', finding['severity_id'], severity?.id],
    ['category', bulwark['category'], incident.category],
    ['analytic.uid', analytic['uid'], incident.rule],
    ['message', finding['message'], incident.description],
    ['created_time', info['created_time'], Date.parse(incident.timestamp)],
  ];
  const wrong = checks.find(([, got, want]) => want === undefined || got !== want);
  return wrong === undefined ? undefined : `${wrong[0]} is ${JSON.stringify(wrong[1])?.slice(0, 80)}, the incident service says ${JSON.stringify(wrong[2])?.slice(0, 80)}`;
}
