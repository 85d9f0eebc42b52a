import { compilePolicySet, parsePolicies, type PolicyAst, type PolicySet } from '@bulwark/policy-language';
import type { LedgerEvent } from '@bulwark/events';

/** One committed version of one policy. */
interface PolicyVersion {
  readonly version: number;
  readonly text: string;
  readonly file: string;
  readonly ast: PolicyAst;
  readonly eventId: string;
}

interface PolicyHistory {
  readonly versions: Map<number, PolicyVersion>;
  active: number;
  /** The highest version ever registered or updated: the next update is max + 1. */
  max: number;
}

/** The outcome of applying one committed policy event. */
export type ApplyOutcome = { readonly kind: 'applied'; readonly name: string; readonly version: number } | { readonly kind: 'skipped'; readonly why: string };

/**
 * The policy state as the ledger's committed `policy.registered|updated|rolledback` events
 * define it (DESIGN §4: state is rebuilt from the ledger). Rules, checked on every event
 * so that the state is a function of the ledger alone, whatever the producers did:
 * - registered: a new name, version 1;
 * - updated: a known name, version = highest so far + 1 (the first committed of two racing
 *   updates wins; the other is skipped);
 * - rolledback: a known name and a version it has had; that version becomes active again
 *   (history is kept; the next update still gets highest + 1).
 * The text must hold exactly one policy, with the event's name. A skipped event changes
 * nothing. `build()` compiles the active versions into an immutable PolicySet.
 */
export class PolicyProjection {
  readonly #policies = new Map<string, PolicyHistory>();
  readonly #levels: readonly string[] | undefined;
  #seq = -1;

  /** `levels`: the classification levels every set is compiled with (default the language's). */
  constructor(levels?: readonly string[]) {
    this.#levels = levels;
  }

  /** The ledger sequence of the last event applied (-1: none). */
  get seq(): number {
    return this.#seq;
  }

  apply(event: LedgerEvent): ApplyOutcome {
    const outcome = this.#apply(event);
    if (outcome.kind === 'applied') this.#seq = Math.max(this.#seq, event.seq);
    return outcome;
  }

  #apply(event: LedgerEvent): ApplyOutcome {
    const d = event.details;
    const name = d['name'];
    const version = d['version'];
    if (typeof name !== 'string' || typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      return { kind: 'skipped', why: 'details lack a policy name and positive integer version' };
    }
    const history = this.#policies.get(name);
    switch (event.eventType) {
      case 'policy.registered':
      case 'policy.updated': {
        const expected = history === undefined ? 1 : history.max + 1;
        if (event.eventType === 'policy.registered' && history !== undefined) return { kind: 'skipped', why: `policy ${name} is already registered` };
        if (event.eventType === 'policy.updated' && history === undefined) return { kind: 'skipped', why: `policy ${name} is not registered` };
        if (version !== expected) return { kind: 'skipped', why: `policy ${name} version ${version} is not the next version ${expected}` };
        const parsed = parseOne(d['text'], d['file'], name, this.#levels);
        if (typeof parsed === 'string') return { kind: 'skipped', why: parsed };
        const entry: PolicyVersion = { version, text: d['text'] as string, file: parsed.file, ast: parsed, eventId: event.eventId };
        if (history === undefined) this.#policies.set(name, { versions: new Map([[version, entry]]), active: version, max: version });
        else {
          history.versions.set(version, entry);
          history.active = version;
          history.max = version;
        }
        return { kind: 'applied', name, version };
      }
      case 'policy.rolledback': {
        if (history === undefined) return { kind: 'skipped', why: `policy ${name} is not registered` };
        if (!history.versions.has(version)) return { kind: 'skipped', why: `policy ${name} has no version ${version}` };
        history.active = version;
        return { kind: 'applied', name, version };
      }
      default:
        return { kind: 'skipped', why: `event type ${event.eventType} does not change policies` };
    }
  }

  /** The active version of `name`, its highest version, and every version it has had. */
  describe(name: string): { active: number; max: number; versions: number[] } | undefined {
    const h = this.#policies.get(name);
    return h === undefined ? undefined : { active: h.active, max: h.max, versions: [...h.versions.keys()].sort((a, b) => a - b) };
  }

  textOf(name: string, version: number): { text: string; file: string } | undefined {
    const v = this.#policies.get(name)?.versions.get(version);
    return v === undefined ? undefined : { text: v.text, file: v.file };
  }

  names(): string[] {
    return [...this.#policies.keys()].sort();
  }

  /** Compiles the active versions; the set's version is `ledger-<seq>` of the last applied event. */
  build(): PolicySet {
    const levels = this.#levels;
    const entries = [...this.#policies.values()].map((h) => {
      const active = h.versions.get(h.active)!;
      return { ast: active.ast, version: active.version };
    });
    return compilePolicySet(entries, { version: `ledger-${this.#seq}`, ...(levels === undefined ? {} : { levels }) });
  }
}

/** The one policy in `text`, named `name`, that compiles on its own (so a set of such policies compiles), or why not. */
export function parseOne(text: unknown, file: unknown, name?: string, levels?: readonly string[]): PolicyAst | string {
  if (typeof text !== 'string') return 'no policy text';
  let policies: readonly PolicyAst[];
  try {
    policies = parsePolicies(text, { file: typeof file === 'string' && file !== '' ? file : 'policy' }).policies;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  if (policies.length !== 1) return `the text holds ${policies.length} policies; one text is one policy`;
  const only = policies[0]!;
  if (name !== undefined && only.name !== name) return `the text is policy ${only.name}, not ${name}`;
  try {
    compilePolicySet([{ ast: only }], levels === undefined ? {} : { levels });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return only;
}
