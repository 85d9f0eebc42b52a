import { randomBytes } from 'node:crypto';
import { MAX_KEY_DEPTH, NO_KEY, quoteKey, writeKey } from './cache-key.js';
import type { PatternAst } from './ast.js';
import type { ReadPath } from './reads.js';
import type { ActionRequest } from './rule-index.js';

/**
 * The decision cache's key for a request object (README "Cache"): the request *projected*
 * on what the policy set can read for its target. `action`, `resource` and `classes` are
 * kept whole; of `context`, only the paths that the rules the index offers for this target
 * can read (reads.ts). A path's prefixes keep just the attributes read (a missing one is
 * missing); a prefix that is not an object, and the value at a path's end, are kept whole.
 *
 * Why this is sound: evaluation looks at nothing else (the candidate rules depend only on
 * the target, and those rules read only these paths), so a request and its projection get
 * the same decision, reasons and diagnostics, and two requests with one projection get one
 * decision. The cache decides a miss on `JSON.parse(keyText(key))`, the projection itself,
 * so a cached decision is a function of its key alone, whatever getters the caller's object has.
 *
 * The key is the projection as a sequence of cells in the plan's order (per attribute
 * visited: MISSING; WALKED into an object, then its attributes; a primitive; LIST, a length
 * and the items of a list of primitives; or the canonical text of another list or object),
 * compared cell by cell (`sameKey`), with a hash of them for the lookup: no key
 * text is built per request, since hashing a few hundred characters of text costs more
 * than the 1 µs a cached decision has (README "Cache"). `keyText` is the same projection as
 * canonical JSON (`cacheKey`): two keys are the same exactly when their texts are.
 *
 * A request of the wrong shape, or whose read parts are not plain JSON (undefined, NaN, a
 * class instance read whole, nesting past MAX_KEY_DEPTH), has no key: it is decided uncached.
 */
export interface RequestKey {
  readonly action: string;
  readonly resource: string;
  readonly classes: readonly string[];
  readonly plan: KeyPlan;
  readonly cells: readonly Cell[];
  readonly hash: number;
}

/** An attribute of a walked object that the request does not have. */
const MISSING: unique symbol = Symbol('missing');
/** An object walked into: the cells of its planned attributes follow. */
const WALKED: unique symbol = Symbol('walked');
/** A list of primitives kept whole: its length and its items follow. */
const LIST: unique symbol = Symbol('list');

/** A list or an object kept whole, as its canonical text (never equal to a string cell). */
class Canonical {
  constructor(readonly text: string) {}
}

type Cell = typeof MISSING | typeof WALKED | typeof LIST | string | number | boolean | null | Canonical;

/** The attributes of one object to keep, sorted by name (UTF-16 code units, as `cacheKey`). */
export type KeyPlan = readonly KeyNode[];

interface KeyNode {
  readonly name: string;
  /** The attributes read below this one; null when the value is read whole. */
  readonly children: KeyPlan | null;
}

export class RequestKeys {
  readonly #verbs = new Set<string>();
  readonly #resources = new Set<string>();
  readonly #classes = new Set<string>();
  readonly #readsFor: (target: ActionRequest) => readonly ReadPath[];
  readonly #busy: () => boolean;
  /** Per set, so that which requests share a hash bucket cannot be worked out offline. */
  readonly #seed = randomBytes(4).readUInt32LE(0);
  /** Plans by verb, resource, then the classes a rule names ('' for none), each '' when the set names none. */
  readonly #plans = new Map<string, Map<string, Map<string, KeyPlan>>>();
  #planCount = 0;

  /**
   * `patterns`: every target pattern of the set; `readsFor`: the context paths the rules
   * matching a target can read; `busy`: whether the set is evaluating.
   */
  constructor(patterns: Iterable<PatternAst>, readsFor: (target: ActionRequest) => readonly ReadPath[], busy: () => boolean) {
    for (const pattern of patterns) {
      if (pattern.kind === 'class') this.#classes.add(pattern.name);
      else if (pattern.kind === 'action') {
        if (pattern.verb !== 'any') this.#verbs.add(pattern.verb);
        if (pattern.resource !== 'any') this.#resources.add(pattern.resource);
      }
    }
    this.#readsFor = readsFor;
    this.#busy = busy;
  }

  key(request: unknown): RequestKey | undefined {
    // A call from inside an evaluation (a getter of the request calling back) is denied by
    // the evaluator; with no key, that denial is never cached.
    if (this.#busy()) return undefined;
    try {
      return this.#read(request);
    } catch {
      // NO_KEY, or a getter or proxy trap of the caller's that threw: no key, and the
      // evaluation that follows decides (a throwing request is denied there).
      return undefined;
    }
  }

  #read(request: unknown): RequestKey | undefined {
    // Each field is read once: the key holds exactly the values it was built from.
    if (typeof request !== 'object' || request === null || Array.isArray(request)) return undefined;
    const { action, resource, classes, context } = request as Record<string, unknown>;
    if (typeof action !== 'string' || typeof resource !== 'string') return undefined;
    if (classes !== undefined && !Array.isArray(classes)) return undefined;
    if (context !== undefined && (typeof context !== 'object' || context === null || Array.isArray(context))) return undefined;
    let classList: readonly string[] = NO_CLASSES;
    let named: string[] | null = null;
    if (classes !== undefined && classes.length > 0) {
      const list: string[] = [];
      for (const name of classes as readonly unknown[]) {
        if (typeof name !== 'string') return undefined;
        list.push(name);
        if (this.#classes.has(name)) (named ??= []).push(name);
      }
      classList = list;
    }
    const plan = this.#planFor(action, resource, classList, named);
    const cells: Cell[] = [];
    readObject(context ?? EMPTY_CONTEXT, plan, cells, 0);
    return { action, resource, classes: classList, plan, cells, hash: hashKey(this.#seed, action, resource, classList, cells) };
  }

  /**
   * The plan for a target, memoized. Targets that name no verb (resource, class) of the set
   * get the same candidates, so they share one plan: the memo is bounded by the set's
   * vocabulary, and cleared past MAX_PLANS all the same.
   */
  #planFor(action: string, resource: string, classes: readonly string[], named: readonly string[] | null): KeyPlan {
    const verb = this.#verbs.has(action) ? action : '';
    const object = this.#resources.has(resource) ? resource : '';
    // Names in patterns are identifiers, so `,` cannot be part of one.
    const classMemo = named === null ? '' : named.length === 1 ? (named[0] as string) : [...new Set(named)].sort().join(',');
    const known = this.#plans.get(verb)?.get(object)?.get(classMemo);
    if (known !== undefined) return known;
    const plan = keyPlan(this.#readsFor({ action, resource, classes }));
    if (++this.#planCount > MAX_PLANS) {
      this.#plans.clear();
      this.#planCount = 1;
    }
    let byObject = this.#plans.get(verb);
    if (byObject === undefined) this.#plans.set(verb, (byObject = new Map()));
    let byClasses = byObject.get(object);
    if (byClasses === undefined) byObject.set(object, (byClasses = new Map()));
    byClasses.set(classMemo, plan);
    return plan;
  }
}

const NO_CLASSES: readonly string[] = Object.freeze([]);
const EMPTY_CONTEXT = Object.freeze({});
const MAX_PLANS = 4096;
/**
 * Paths are cut to this length, the last attribute kept read whole (more than is read, so
 * still sound); this bounds the recursion of planning and keying.
 */
export const MAX_PLANNED_PATH = 32;

interface Trie {
  whole: boolean;
  readonly children: Map<string, Trie>;
}

/** The plan of a set of read paths: a trie in which a whole read covers every path below it. */
export function keyPlan(paths: readonly ReadPath[]): KeyPlan {
  const root: Trie = { whole: false, children: new Map() };
  for (const path of paths) {
    let node = root;
    const length = Math.min(path.length, MAX_PLANNED_PATH);
    for (let i = 0; i < length && !node.whole; i++) {
      const name = path[i] as string;
      let child = node.children.get(name);
      if (child === undefined) node.children.set(name, (child = { whole: false, children: new Map() }));
      node = child;
    }
    node.whole = true;
  }
  return planOf(root);
}

function planOf(trie: Trie): KeyPlan {
  const names = [...trie.children.keys()].sort();
  return Object.freeze(
    names.map((name) => {
      const child = trie.children.get(name) as Trie;
      return Object.freeze({ name, children: child.whole ? null : planOf(child) });
    }),
  );
}

/** Reads an object as the evaluator does (`compileAccess`): own properties only. */
function readObject(object: object, plan: KeyPlan, cells: Cell[], depth: number): void {
  const record = object as Record<string, unknown>;
  for (const node of plan) {
    if (!Object.hasOwn(record, node.name)) {
      cells.push(MISSING);
      continue;
    }
    const value = record[node.name];
    if (node.children !== null && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      cells.push(WALKED);
      readObject(value, node.children, cells, depth + 1);
    } else {
      // A value read whole, or a prefix that is not an object: the access fails and describes it.
      readWhole(value, cells, depth + 1);
    }
  }
}

function readWhole(value: unknown, cells: Cell[], depth: number): void {
  if (typeof value !== 'object' || value === null) {
    cells.push(primitiveCell(value));
    return;
  }
  if (depth >= MAX_KEY_DEPTH) throw NO_KEY;
  // The common list, of strings or numbers, goes in as its items: no text to build or hash.
  if (Array.isArray(value) && value.every(isPrimitive)) {
    cells.push(LIST, value.length);
    for (const item of value) cells.push(primitiveCell(item));
    return;
  }
  cells.push(new Canonical(writeKey(value, depth)));
}

function isPrimitive(value: unknown): boolean {
  return value === null || typeof value !== 'object';
}

function primitiveCell(value: unknown): Cell {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw NO_KEY;
      // -0 and 0 are one JSON number, equal under the evaluator's `===` and `<`.
      return value === 0 ? 0 : value;
    case 'object':
      if (value === null) return null;
      throw NO_KEY;
    default:
      // undefined, functions, symbols, bigints; holes of a sparse list read as undefined.
      throw NO_KEY;
  }
}

/** Whether two keys are one projection (hence one decision): exactly when their `keyText`s are equal. */
export function sameKey(a: RequestKey, b: RequestKey): boolean {
  if (a.hash !== b.hash || a.action !== b.action || a.resource !== b.resource) return false;
  // One target has one plan, but a cleared memo can rebuild it as another object: compare texts then.
  if (a.plan !== b.plan) return keyText(a) === keyText(b);
  const x = a.classes;
  const y = b.classes;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  const p = a.cells;
  const q = b.cells;
  if (p.length !== q.length) return false;
  for (let i = 0; i < p.length; i++) {
    const u = p[i];
    const v = q[i];
    if (u !== v && !(u instanceof Canonical && v instanceof Canonical && u.text === v.text)) return false;
  }
  return true;
}

/**
 * The projection as canonical JSON (`cacheKey` of it): a request with the same decision as
 * the one the key was read from.
 */
export function keyText(key: RequestKey): string {
  let at = 0;
  const cells = key.cells;
  const writeObject = (plan: KeyPlan): string => {
    let out = '{';
    for (const node of plan) {
      const cell = cells[at++] as Cell;
      if (cell === MISSING) continue;
      let text: string;
      if (cell === WALKED) text = writeObject(node.children as KeyPlan);
      else if (cell === LIST) {
        const items = cells.slice(at + 1, at + 1 + (cells[at] as number));
        at += 1 + items.length;
        text = writeKey(items, 0);
      } else text = cell instanceof Canonical ? cell.text : writeKey(cell, 0);
      out += `${out.length === 1 ? '' : ','}${quoteKey(node.name)}:${text}`;
    }
    return `${out}}`;
  };
  const context = writeObject(key.plan);
  const classes = key.classes.map(quoteKey).join(',');
  return `{"action":${quoteKey(key.action)},"classes":[${classes}],"context":${context},"resource":${quoteKey(key.resource)}}`;
}

/** FNV-1a over the key's parts, each tagged with its kind so that `1`, `"1"` and `true` differ. */
function hashKey(seed: number, action: string, resource: string, classes: readonly string[], cells: readonly Cell[]): number {
  let h = hashString(seed, action);
  h = hashString(h, resource);
  for (const name of classes) h = hashString(mix(h, 1), name);
  h = mix(h, classes.length);
  for (const cell of cells) {
    switch (typeof cell) {
      case 'string':
        h = hashString(mix(h, 2), cell);
        break;
      case 'number':
        h = Number.isInteger(cell) && Math.abs(cell) < 0x80000000 ? mix(mix(h, 3), cell | 0) : hashString(mix(h, 4), String(cell));
        break;
      case 'boolean':
        h = mix(h, cell ? 5 : 6);
        break;
      case 'symbol':
        h = mix(h, cell === MISSING ? 7 : cell === WALKED ? 8 : 11);
        break;
      default:
        h = cell === null ? mix(h, 9) : hashString(mix(h, 10), cell.text);
    }
  }
  return h;
}

function mix(h: number, n: number): number {
  return Math.imul(h ^ n, 0x01000193) >>> 0;
}

function hashString(h: number, text: string): number {
  let x = Math.imul(h ^ text.length, 0x01000193);
  for (let i = 0; i < text.length; i++) x = Math.imul(x ^ text.charCodeAt(i), 0x01000193);
  return x >>> 0;
}
