/**
 * `bulwark soc export`'s source: the incidents of the state rebuilt from the verified ledger (the
 * service's reader checks every event's signature, chain and producer), as OCSF Detection
 * Findings built by the SOC stream's own builder. Nothing is read back from the SOC bus stream.
 * Each finding is the incident's latest lifecycle state (create / update = acknowledged / close =
 * resolved), `time` that state's ledger timestamp, so two exports of the same range are identical.
 */
import { InputError } from '@bulwark/errors';
import { SEVERITY_RANK } from '../incidents/security-event.js';
import type { Severity } from '../rules/load.js';
import { detectionFinding, type DetectionFinding } from '../soc/ocsf.js';
import type { IncidentRecord } from './state.js';

/** At most this many findings per export: a wider range is refused with how to narrow it, never cut silently. */
export const MAX_EXPORT = 5000;

export interface ExportQuery {
  /** Incidents created at or after (ms). */
  readonly since: number;
  /** Incidents created before (ms). */
  readonly until: number;
  readonly severity: Severity;
}

const bad = (why: string) => new InputError('E_INCIDENT_EXPORT', `bulwark.incident.list export: ${why}`, {});

export function parseExportQuery(v: unknown, now: number): ExportQuery {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('export must be an object { since, until?, severity? }');
  const o = v as Record<string, unknown>;
  const since = o['since'];
  const until = o['until'] ?? now;
  if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) throw bad('since must be a time in ms');
  if (typeof until !== 'number' || !Number.isSafeInteger(until)) throw bad('until must be a time in ms');
  if (until <= since) throw bad(`until (${new Date(until).toISOString()}) must be after since (${new Date(since).toISOString()})`);
  const severity = o['severity'] ?? 'info';
  if (typeof severity !== 'string' || !(severity in SEVERITY_RANK)) throw bad(`severity must be one of ${Object.keys(SEVERITY_RANK).join(', ')}`);
  return { since, until, severity: severity as Severity };
}

export function exportFindings(records: readonly IncidentRecord[], q: ExportQuery): DetectionFinding[] {
  const floor = SEVERITY_RANK[q.severity];
  const chosen = records.filter((r) => {
    const created = Date.parse(r.incident.timestamp);
    return r.published && created >= q.since && created < q.until && SEVERITY_RANK[r.incident.severity] >= floor;
  });
  if (chosen.length > MAX_EXPORT) throw bad(`${chosen.length} incidents in range, more than ${MAX_EXPORT}: narrow --since/--until`);
  return chosen.map((r) => {
    const t = r.times;
    const status = r.incident.status;
    const activity = status === 'resolved' ? 'close' : status === 'acknowledged' ? 'update' : 'create';
    const at = (status === 'resolved' ? t.resolvedAt : status === 'acknowledged' ? t.acknowledgedAt : t.openedAt) ?? t.openedAt ?? t.triggerAt;
    return detectionFinding(r.incident, activity, at, [...r.actions.values()].map((a) => ({ action: a.action, outcome: a.outcome })));
  });
}
