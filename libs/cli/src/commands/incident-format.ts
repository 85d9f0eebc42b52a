/** How `bulwark incident` prints incidents and their MTTA / MTTC (services/incident-response `timing.ts`). */
import type { IncidentTimings, TimingStats } from '@bulwark/incident-response';

export interface View {
  id: string;
  timestamp: string;
  severity: string;
  category: string;
  status: string;
  rule: string;
  description: string;
  evidence: { count: number };
  actions: { action: string; outcome: string; attempts: number; detail: string }[];
  times: IncidentTimings;
  recoveryFailed?: { at: number; by: string; detail: string };
}

/** 850 ms, 12.3 s, 4.5 min, 2.0 h: a figure a person reads at a glance. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function listLine(i: View): string {
  return `${i.id}  ${i.severity.padEnd(8)} ${i.status.padEnd(12)} ${i.category.padEnd(18)} ${String(i.evidence.count).padStart(6)} ev  tta ${formatDuration(i.times.ttaMs).padEnd(8)} ttc ${formatDuration(i.times.ttcMs).padEnd(8)} ${i.description}\n`;
}

export function showText(i: View): string {
  const t = i.times;
  const lines = [
    i.id,
    `  ${i.severity} ${i.category} ${i.status}, rule ${i.rule}, since ${i.timestamp}`,
    `  ${i.description}`,
    `  evidence: ${i.evidence.count} ledger events`,
    `  triggered ${t.triggerAt}, opened ${t.openedAt ?? '-'}, acknowledged ${t.acknowledgedAt ?? '-'}, contained ${t.containedAt ?? '-'}, resolved ${t.resolvedAt ?? '-'}`,
    `  time to acknowledge ${formatDuration(t.ttaMs)}, time to contain ${formatDuration(t.ttcMs)}`,
    ...i.actions.map((a) => `  ${a.action}: ${a.outcome} (attempt ${a.attempts}) ${a.detail}`),
    ...(i.recoveryFailed === undefined ? [] : [`  last recovery by ${i.recoveryFailed.by} failed: ${i.recoveryFailed.detail}`]),
  ];
  return `${lines.join('\n')}\n`;
}

export function statsText(s: TimingStats): string {
  const row = (name: string, a: TimingStats['mtta']) => `${name}  mean ${formatDuration(a.meanMs).padEnd(9)} p50 ${formatDuration(a.p50Ms).padEnd(9)} over ${a.count} of ${s.incidents} incidents\n`;
  return row('MTTA', s.mtta) + row('MTTC', s.mttc);
}
