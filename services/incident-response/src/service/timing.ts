/**
 * MTTA and MTTC (seed S7.4), from the ledger timestamps in `IncidentTimes` (state.ts), so a
 * restart that replays the ledger gives the same figures:
 * - time to acknowledge: `incident.opened` → the first `incident.acknowledged` (or
 *   `incident.resolved`): how long the SOC took to take it;
 * - time to contain: the triggering event → `incident.mitigated {policy.contain, done}`: how long
 *   the agent could still act once it was detectable (the policy denial is what stops it; the
 *   sandbox and key steps follow side by side and are in the incident's actions).
 */
import type { IncidentRecord } from './state.js';

export interface IncidentTimings {
  readonly triggerAt: string;
  readonly openedAt?: string;
  readonly acknowledgedAt?: string;
  readonly containedAt?: string;
  readonly resolvedAt?: string;
  readonly ttaMs?: number;
  readonly ttcMs?: number;
}

export interface Aggregate {
  /** Incidents that have the figure. */
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
}

export interface TimingStats {
  readonly incidents: number;
  readonly mtta: Aggregate;
  readonly mttc: Aggregate;
}

export function timeToAcknowledge(r: IncidentRecord): number | undefined {
  const { openedAt, acknowledgedAt } = r.times;
  return openedAt === undefined || acknowledgedAt === undefined ? undefined : Math.max(0, acknowledgedAt - openedAt);
}

export function timeToContain(r: IncidentRecord): number | undefined {
  const { triggerAt, containedAt } = r.times;
  return containedAt === undefined ? undefined : Math.max(0, containedAt - triggerAt);
}

export function timingsOf(r: IncidentRecord): IncidentTimings {
  const t = r.times;
  const out: Record<string, string | number> = { triggerAt: new Date(t.triggerAt).toISOString() };
  for (const k of ['openedAt', 'acknowledgedAt', 'containedAt', 'resolvedAt'] as const) {
    const v = t[k];
    if (v !== undefined) out[k] = new Date(v).toISOString();
  }
  const tta = timeToAcknowledge(r);
  const ttc = timeToContain(r);
  if (tta !== undefined) out['ttaMs'] = tta;
  if (ttc !== undefined) out['ttcMs'] = ttc;
  return out as unknown as IncidentTimings;
}

/** Mean and median (the lower middle of an even count: a figure that was measured). */
export function aggregate(values: readonly number[]): Aggregate {
  if (values.length === 0) return { count: 0, meanMs: null, p50Ms: null };
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, meanMs: Math.round(sorted.reduce((a, b) => a + b, 0) / sorted.length), p50Ms: sorted[Math.floor((sorted.length - 1) / 2)]! };
}

export function timingStats(records: readonly IncidentRecord[]): TimingStats {
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  return { incidents: records.length, mtta: aggregate(defined(records.map(timeToAcknowledge))), mttc: aggregate(defined(records.map(timeToContain))) };
}
