import { Commands, SMALLEST_BUCKET_REPLY_BODY, type CommandHandler, type CommandSubject } from '@bulwark/bus';
import { MAX_BATCH_REQUESTS, type PolicyListReply } from '@bulwark/client';
import { decisionToJson, type Decision } from '@bulwark/policy-language';
import type { Decider } from './decide.js';
import { PolicyAdminInputError } from './errors.js';
import type { PolicyState } from './start-projection.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A decision's reply body. Replies are padded to size buckets so that their length does not
 * tell the decision (DESIGN §3a); a Deny listing many diagnostics would still reach the next
 * bucket and stand out, so a reply that does not fit the smallest bucket carries the number of
 * its diagnostics (`diagnosticsOmitted`) instead of them. Enforcement points do not read them;
 * the decision event in the ledger keeps them all.
 */
export function decisionReply(decision: Decision): Uint8Array {
  const json = decisionToJson(decision);
  const bytes = encoder.encode(JSON.stringify(json));
  if (bytes.length <= SMALLEST_BUCKET_REPLY_BODY || json['diagnostics'] === undefined) return bytes;
  const { diagnostics, ...rest } = json;
  return encoder.encode(JSON.stringify({ ...rest, diagnosticsOmitted: (diagnostics as readonly unknown[]).length }));
}

/**
 * `bulwark.policy.evaluate`, `.evaluate.batch` and `.admin.list`. A request reads the set
 * in force once and is decided entirely by it (a batch too); its reply names `setVersion`.
 */
export function evaluationHandlers(state: PolicyState, decider: Decider): { readonly [S in CommandSubject]?: CommandHandler } {
  // A cached decision is one frozen object answered again and again: its reply bytes are
  // encoded once (the bus copies them into the sealed frame; nobody writes to them).
  const replies = new WeakMap<Decision, Uint8Array>();
  const replyOf = (decision: Decision): Uint8Array => {
    let bytes = replies.get(decision);
    if (bytes === undefined) {
      bytes = decisionReply(decision);
      if (Object.isFrozen(decision)) replies.set(decision, bytes);
    }
    return bytes;
  };

  const evaluate: CommandHandler = async (req) => replyOf(decider.decide(state.current(), req.peer, decoder.decode(req.body)));

  const evaluateBatch: CommandHandler = async (req) => {
    const set = state.current();
    let items: unknown;
    try {
      items = JSON.parse(decoder.decode(req.body));
    } catch {
      throw new PolicyAdminInputError('E_POLICY_BATCH', 'evaluate.batch: the body is not JSON');
    }
    if (!Array.isArray(items) || items.length > MAX_BATCH_REQUESTS) {
      throw new PolicyAdminInputError('E_POLICY_BATCH', `evaluate.batch: the body must be a JSON list of at most ${MAX_BATCH_REQUESTS} requests`);
    }
    // Each request's own text keys the cache and the audit record, as on the single path.
    const out = items.map((item) => decisionToJson(decider.decide(set, req.peer, JSON.stringify(item))));
    return encoder.encode(JSON.stringify(out));
  };

  const list: CommandHandler = async () => {
    const set = state.current();
    const reply: PolicyListReply = {
      setVersion: set.version,
      policies: set.policies.map((p) => ({ name: p.name, activeVersion: p.version, versions: state.projection.describe(p.name)?.versions ?? [p.version], file: p.file, rules: p.rules })),
    };
    return encoder.encode(JSON.stringify(reply));
  };

  return { [Commands.policy.evaluate]: evaluate, [Commands.policy.evaluateBatch]: evaluateBatch, [Commands.policy.adminList]: list };
}
