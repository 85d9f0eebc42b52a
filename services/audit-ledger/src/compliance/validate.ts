/**
 * validateCompliance (seed S4.3 validate_compliance): reads the events of a period in
 * seq pages (constant memory), checks each framework requirement and access control
 * against them, verifies the whole chain, and reports the retention in force. Any
 * finding, a chain that does not verify, or a retention shorter than the framework's
 * makes the report non-compliant (fail-secure: an unknown is never a pass).
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { firstStoredSeq } from '../archive-anchor.js';
import { retentionCutoff } from '../archive.js';
import type { LedgerDb } from '../ledger.js';
import type { VerifierKey } from '../note/keys.js';
import { toNumber } from '../store/rows.js';
import { verifyLedger } from '../verify.js';
import { detailAt, type AccessControlRequirement, type ComplianceFramework, type DetailValue, type EventRequirement } from './framework.js';

export interface CompliancePeriod {
  readonly from: Date;
  readonly to: Date;
}

export interface ComplianceSource {
  readonly db: LedgerDb;
  readonly crypto: CryptoProvider;
  readonly origin: string;
  readonly logKey: VerifierKey;
  /** The configured retention (config audit_retention_days); compared with the framework's. */
  readonly retentionDays: number;
  readonly now?: Date;
}

/** Offending seqs listed per finding; the count is always exact. */
export const MAX_FINDING_SEQS = 100;

export type FindingKind = 'too few events' | 'missing detail' | 'access not allowed' | 'chain' | 'retention';

export interface ComplianceFinding {
  readonly requirement: string;
  readonly kind: FindingKind;
  readonly message: string;
  readonly count: number;
  readonly seqs: readonly number[];
}

export interface RequirementResult {
  readonly id: string;
  readonly description: string;
  readonly kind: 'events' | 'access control';
  readonly events: number;
  readonly passed: boolean;
}

export interface ComplianceReport {
  readonly framework: { readonly id: string; readonly name: string; readonly retentionDays: number };
  readonly period: { readonly from: string; readonly to: string };
  readonly generatedAt: string;
  readonly compliant: boolean;
  readonly chain: { readonly ok: boolean; readonly size?: number; readonly message: string; readonly seq?: number };
  readonly retention: {
    readonly requiredDays: number;
    readonly configuredDays: number;
    readonly cutoff: string;
    readonly firstStoredSeq: number;
    readonly ok: boolean;
    readonly message: string;
  };
  readonly totalEvents: number;
  readonly countsByType: Readonly<Record<string, number>>;
  readonly requirements: readonly RequirementResult[];
  readonly findings: readonly ComplianceFinding[];
}

const PAGE = 2000;

class FindingBuilder {
  readonly #byKey = new Map<string, { requirement: string; kind: FindingKind; message: string; count: number; seqs: number[] }>();

  add(requirement: string, kind: FindingKind, message: string, seq?: number): void {
    const key = `${requirement}\u0000${kind}\u0000${message}`;
    let finding = this.#byKey.get(key);
    if (finding === undefined) {
      finding = { requirement, kind, message, count: 0, seqs: [] };
      this.#byKey.set(key, finding);
    }
    finding.count += 1;
    if (seq !== undefined && finding.seqs.length < MAX_FINDING_SEQS) finding.seqs.push(seq);
  }

  list(): ComplianceFinding[] {
    return [...this.#byKey.values()];
  }
}

function matches(details: unknown, where: Readonly<Record<string, DetailValue>>): boolean {
  return Object.entries(where).every(([path, value]) => detailAt(details, path) === value);
}

function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

export async function validateCompliance(source: ComplianceSource, framework: ComplianceFramework, period: CompliancePeriod): Promise<ComplianceReport> {
  const fromMs = period.from.getTime();
  const toMs = period.to.getTime();
  if (Number.isNaN(fromMs) || Number.isNaN(toMs) || fromMs >= toMs) throw new InputError('E_PERIOD', 'compliance period: --from must be a valid date before --to', {});
  const now = source.now ?? new Date();
  const findings = new FindingBuilder();
  const counts = new Map<string, number>();
  const requirementEvents = new Map<string, number>();
  const everyRule: readonly (EventRequirement | AccessControlRequirement)[] = [...framework.requirements, ...framework.accessControls];
  for (const rule of everyRule) requirementEvents.set(rule.id, 0);
  let total = 0;

  for (let after = -1n; ; ) {
    const rows = await source.db
      .selectFrom('events')
      .select(['seq', 'event_type', 'details'])
      .where('seq', '>', after)
      .where('timestamp_ms', '>=', BigInt(fromMs))
      .where('timestamp_ms', '<', BigInt(toMs))
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      const seq = toNumber(row.seq, 'seq');
      total += 1;
      counts.set(row.event_type, (counts.get(row.event_type) ?? 0) + 1);
      let details: unknown;
      try {
        details = JSON.parse(row.details);
      } catch {
        details = undefined; // the chain check reports the tampered row; here it simply carries no details
      }
      for (const rule of framework.requirements) {
        if (!(rule.eventTypes as readonly string[]).includes(row.event_type) || !matches(details, rule.where)) continue;
        requirementEvents.set(rule.id, requirementEvents.get(rule.id)! + 1);
        for (const detail of rule.requiredDetails) {
          if (!isPresent(detailAt(details, detail))) findings.add(rule.id, 'missing detail', `${row.event_type} events without details.${detail}`, seq);
        }
      }
      for (const rule of framework.accessControls) {
        if (!(rule.eventTypes as readonly string[]).includes(row.event_type) || !matches(details, rule.where)) continue;
        requirementEvents.set(rule.id, requirementEvents.get(rule.id)! + 1);
        const value = detailAt(details, rule.detail);
        if (!rule.allowed.includes(value as DetailValue)) {
          const shown = value === undefined ? 'absent' : JSON.stringify(value);
          findings.add(rule.id, 'access not allowed', `${row.event_type} events whose details.${rule.detail} is ${shown}, not ${rule.allowed.map((v) => JSON.stringify(v)).join(' or ')}`, seq);
        }
      }
    }
    after = BigInt(rows[rows.length - 1]!.seq);
  }

  for (const rule of framework.requirements) {
    const n = requirementEvents.get(rule.id)!;
    if (n < rule.minEvents) findings.add(rule.id, 'too few events', `${n} matching ${rule.eventTypes.join('/')} events in the period, at least ${rule.minEvents} required`);
  }

  const verified = await verifyLedger(source.db, { crypto: source.crypto, origin: source.origin, logKey: source.logKey });
  const chain = verified.ok
    ? { ok: true, size: verified.size, message: `all ${verified.size} events, links, signatures and checkpoints verify` }
    : { ok: false, message: verified.message, ...(verified.seq === undefined ? {} : { seq: verified.seq }) };
  if (!chain.ok) findings.add('chain-integrity', 'chain', `the ledger does not verify: ${chain.message}`, verified.ok ? undefined : verified.seq);

  const first = (await firstStoredSeq(source.db)) ?? 0;
  const retentionOk = source.retentionDays >= framework.retentionDays;
  const cutoff = retentionCutoff(framework.retentionDays, now);
  const retentionMessage = retentionOk
    ? `configured retention ${source.retentionDays} days covers the required ${framework.retentionDays}; ${first === 0 ? 'nothing archived' : `seq 0..${first - 1} archived (anchored by checkpoint ${first})`}`
    : `configured retention ${source.retentionDays} days is shorter than the ${framework.retentionDays} days ${framework.name} requires`;
  if (!retentionOk) findings.add('retention', 'retention', retentionMessage);

  const list = findings.list();
  const failed = new Set(list.map((f) => f.requirement));
  return {
    framework: { id: framework.id, name: framework.name, retentionDays: framework.retentionDays },
    period: { from: period.from.toISOString(), to: period.to.toISOString() },
    generatedAt: now.toISOString(),
    compliant: list.length === 0,
    chain,
    retention: { requiredDays: framework.retentionDays, configuredDays: source.retentionDays, cutoff: cutoff.toISOString(), firstStoredSeq: first, ok: retentionOk, message: retentionMessage },
    totalEvents: total,
    countsByType: Object.fromEntries([...counts.entries()].sort(([a], [b]) => (a < b ? -1 : 1))),
    requirements: everyRule.map((rule) => ({
      id: rule.id,
      description: rule.description,
      kind: 'requiredDetails' in rule ? 'events' : 'access control',
      events: requirementEvents.get(rule.id)!,
      passed: !failed.has(rule.id),
    })),
    findings: list,
  };
}
