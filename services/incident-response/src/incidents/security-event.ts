/**
 * The SecurityEvent of seed S7.2: {id, timestamp, severity, category, description,
 * affected_components, recommended_actions}, plus what a SOC needs to act on it: the rule
 * that raised it, its key, its status, and its evidence (ledger seqs).
 */
import { createHash } from 'node:crypto';
import type { Severity } from '../rules/load.js';

export type IncidentStatus = 'open' | 'acknowledged' | 'resolved';

export interface Evidence {
  /** Every evidence event's ledger seq, ascending, at most MAX_EVIDENCE_SEQS (count goes on). */
  readonly seqs: number[];
  count: number;
  firstSeq: number;
  lastSeq: number;
  firstAt: number;
  lastAt: number;
}

export interface SecurityEvent {
  readonly id: string;
  /** When the first evidence event happened (ISO 8601). */
  readonly timestamp: string;
  severity: Severity;
  readonly category: string;
  description: string;
  readonly affected_components: string[];
  readonly recommended_actions: string[];
  readonly rule: string;
  readonly key: string;
  /** The agent the incident is about (the key's principal), if any. */
  readonly agentId: string | undefined;
  status: IncidentStatus;
  readonly evidence: Evidence;
}

export const MAX_EVIDENCE_SEQS = 10_000;

/** Deterministic from the ledger: a rebuild after a restart names the same incident the same way. */
export function incidentIdOf(rule: string, key: string, firstSeq: number): string {
  const h = createHash('sha256').update(`bulwark.incident.v1\n${rule}\n${key}\n${firstSeq}`).digest('hex');
  // RFC 9562 layout, version 8 (custom), variant 10.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

/** Parses `high+` / `medium` style filters: the least severity to show. */
export function severityAtLeast(severity: Severity, floor: Severity): boolean {
  return SEVERITY_RANK[severity] >= SEVERITY_RANK[floor];
}
