import type { PatternAst } from './ast.js';

/** What a target is matched against. */
export interface ActionRequest {
  readonly action: string;
  readonly resource: string;
  readonly classes: readonly string[];
}

export interface Targeted {
  /** Position in the whole policy set (policy order, then rule order): the evaluation order. */
  readonly ordinal: number;
  readonly patterns: readonly PatternAst[];
}

/** README "Targets": `any` matches everything; `verb(resource)` with `any` for either; a bare name is a class. */
export function patternMatches(pattern: PatternAst, request: ActionRequest): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'action':
      return (pattern.verb === 'any' || pattern.verb === request.action) && (pattern.resource === 'any' || pattern.resource === request.resource);
    case 'class':
      return request.classes.includes(pattern.name);
    default: {
      const never: never = pattern;
      return never;
    }
  }
}

export function targetMatches(rule: Targeted, request: ActionRequest): boolean {
  for (const pattern of rule.patterns) if (patternMatches(pattern, request)) return true;
  return false;
}

const NONE: readonly never[] = Object.freeze([]);

/**
 * The rules of one kind, bucketed by what their targets name, so that evaluation visits only
 * the rules whose target matches the request, in the same order a full scan would: a
 * request's candidates are the union of at most four buckets plus one per class, merged by
 * ordinal. `scan` is the full scan, the reference the index is tested against.
 */
export class RuleIndex<R extends Targeted> {
  private readonly universal: R[] = [];
  private readonly exact = new Map<string, Map<string, R[]>>();
  private readonly byVerb = new Map<string, R[]>();
  private readonly byResource = new Map<string, R[]>();
  private readonly byClass = new Map<string, R[]>();
  // Scratch for one merge at a time: evaluation is synchronous, so it is never shared.
  private readonly buckets: (readonly R[])[] = [];
  private readonly cursors: number[] = [];

  /** Rules must be added in ordinal order. */
  constructor(readonly all: readonly R[]) {
    for (const rule of all) {
      for (const pattern of rule.patterns) addOnce(this.bucketFor(pattern), rule);
    }
  }

  get size(): number {
    return this.all.length;
  }

  private bucketFor(pattern: PatternAst): R[] {
    switch (pattern.kind) {
      case 'any':
        return this.universal;
      case 'class':
        return getOrCreate(this.byClass, pattern.name);
      case 'action':
        if (pattern.verb === 'any') return pattern.resource === 'any' ? this.universal : getOrCreate(this.byResource, pattern.resource);
        if (pattern.resource === 'any') return getOrCreate(this.byVerb, pattern.verb);
        return getOrCreate(getOrCreateMap(this.exact, pattern.verb), pattern.resource);
      default: {
        const never: never = pattern;
        return never;
      }
    }
  }

  /** The rules whose target matches, in ordinal order, each once. The result is valid until the next call. */
  candidates(request: ActionRequest, out: R[]): readonly R[] {
    const buckets = this.buckets;
    buckets.length = 0;
    pushIfAny(buckets, this.universal);
    pushIfAny(buckets, this.byVerb.get(request.action));
    pushIfAny(buckets, this.byResource.get(request.resource));
    pushIfAny(buckets, this.exact.get(request.action)?.get(request.resource));
    if (this.byClass.size > 0) for (const name of request.classes) pushIfAny(buckets, this.byClass.get(name));
    if (buckets.length === 0) return NONE;
    if (buckets.length === 1) return buckets[0] as readonly R[];
    return this.merge(out);
  }

  private merge(out: R[]): readonly R[] {
    const buckets = this.buckets;
    const cursors = this.cursors;
    cursors.length = buckets.length;
    cursors.fill(0);
    out.length = 0;
    let last = -1;
    for (;;) {
      let best = -1;
      let bestOrdinal = Number.POSITIVE_INFINITY;
      for (let b = 0; b < buckets.length; b++) {
        const bucket = buckets[b] as readonly R[];
        const cursor = cursors[b] as number;
        if (cursor < bucket.length) {
          const ordinal = (bucket[cursor] as R).ordinal;
          if (ordinal < bestOrdinal) {
            bestOrdinal = ordinal;
            best = b;
          }
        }
      }
      if (best < 0) return out;
      const rule = (buckets[best] as readonly R[])[cursors[best] as number] as R;
      cursors[best] = (cursors[best] as number) + 1;
      // A rule named by two buckets (a list target, a class given twice) comes out twice in a row.
      if (rule.ordinal !== last) {
        out.push(rule);
        last = rule.ordinal;
      }
    }
  }

  /** The reference: every rule, in order, whose target matches. */
  scan(request: ActionRequest, out: R[]): readonly R[] {
    out.length = 0;
    for (const rule of this.all) if (targetMatches(rule, request)) out.push(rule);
    return out;
  }
}

function addOnce<R extends Targeted>(bucket: R[], rule: R): void {
  if (bucket[bucket.length - 1] !== rule) bucket.push(rule);
}

function pushIfAny<R>(buckets: (readonly R[])[], bucket: readonly R[] | undefined): void {
  if (bucket !== undefined && bucket.length > 0) buckets.push(bucket);
}

function getOrCreate<K, V>(map: Map<K, V[]>, key: K): V[] {
  let value = map.get(key);
  if (!value) map.set(key, (value = []));
  return value;
}

function getOrCreateMap<K, L, V>(map: Map<K, Map<L, V>>, key: K): Map<L, V> {
  let value = map.get(key);
  if (!value) map.set(key, (value = new Map()));
  return value;
}
