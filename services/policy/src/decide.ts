import type { DecisionCache, Decision, PolicySet } from '@bulwark/policy-language';
import type { AuditGuard } from './audit-guard.js';
import type { DecisionLog } from './decision-log.js';

/** The decision path with its audit record; `undefined` audit means decisions are not recorded (`audit_enabled = false`). */
export interface DeciderOptions {
  readonly cache: DecisionCache;
  readonly audit?: { readonly log: DecisionLog; readonly guard: AuditGuard };
  /** Told of every decision, the audit path's denies included (metrics); must not throw. */
  readonly onDecision?: (decision: Decision) => void;
}

/**
 * Decides one request text with one set and queues its audit record (DESIGN §5). A
 * decision that cannot be recorded, or (strict mode) one the ledger is too far behind to
 * commit in time, is a Deny that says why; the Deny itself is recorded when the log can take it.
 */
export class Decider {
  readonly #o: DeciderOptions;
  #decisions = 0;

  constructor(options: DeciderOptions) {
    this.#o = options;
  }

  get decisions(): number {
    return this.#decisions;
  }

  get cacheStats(): { readonly hits: number; readonly misses: number; readonly size: number } {
    return this.#o.cache.stats;
  }

  decide(set: PolicySet, peer: string, text: string): Decision {
    const decision = this.#decide(set, peer, text);
    this.#o.onDecision?.(decision);
    return decision;
  }

  /**
   * A set that reads `caller` sees the authenticated peer as `context.caller.id`, replacing any
   * `caller` the request carries (a peer cannot claim to be another). Incident containment
   * (`deny: any if caller.id == "agent.x"`, services/incident-response) relies on it.
   */
  #evaluate(set: PolicySet, peer: string, text: string): Decision {
    if (!set.readsCaller) return this.#o.cache.evaluateJson(set, text);
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      return this.#o.cache.evaluateJson(set, text);
    }
    if (request === null || typeof request !== 'object' || Array.isArray(request)) return this.#o.cache.evaluateJson(set, text);
    const r = request as { context?: unknown };
    const plain = r.context !== null && typeof r.context === 'object' && !Array.isArray(r.context);
    // A context of the wrong shape is decided as it came (denied); only a missing one becomes {}.
    if (r.context !== undefined && !plain) return this.#o.cache.evaluateJson(set, text);
    const context = plain ? (r.context as object) : {};
    return this.#o.cache.evaluate(set, { ...r, context: { ...context, caller: { id: peer } } });
  }

  #decide(set: PolicySet, peer: string, text: string): Decision {
    this.#decisions++;
    const audit = this.#o.audit;
    if (audit === undefined) return this.#evaluate(set, peer, text);
    // Refuse before evaluating: a log that cannot take this decision, or a ledger that has
    // not committed the earlier ones in time, makes any answer but Deny unrecorded.
    const why = audit.guard.denyReason();
    if (why !== undefined) {
      const deny = set.denyInvalid(why);
      audit.log.offer(peer, text, deny);
      return deny;
    }
    const decision = this.#evaluate(set, peer, text);
    if (audit.log.offer(peer, text, decision)) return decision;
    return set.denyInvalid(audit.guard.denyReason() ?? 'audit log unavailable: the decision could not be recorded, so it is denied (audit_enabled)');
  }
}
