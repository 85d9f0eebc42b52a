/**
 * Inputs for fuzzing the parser and compiler: policy texts generated from the grammar, then
 * mutated (spans deleted, duplicated, swapped; tokens, quotes, comment markers, control and
 * astral characters inserted; deep nesting; truncation), plus plain noise. Deterministic for
 * a seed, with no dependency, so a failing input can be regenerated from its seed and index.
 */
export interface PolicyFuzzer {
  /** The next input. */
  next(): string;
}

export function createPolicyFuzzer(seed: number): PolicyFuzzer {
  const random = mulberry32(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  return {
    next(): string {
      const roll = random();
      if (roll < 0.3) return generatePolicies(int, pick);
      if (roll < 0.9) return mutate(generatePolicies(int, pick), int, pick);
      if (roll < 0.95) return nesting(int, pick);
      return noise(int);
    },
  };
}

const ROOTS = ['user', 'session', 'data', 'x', 'xs', 'clearance', '__proto__', 'constructor', '_', 'a1'];
const ATTRIBUTES = [...ROOTS, 'policy', 'allow', 'if', 'for', 'any', 'true', 'contains'];
const VERBS = ['read', 'write', 'export', 'any', 'audit', 'policy'];
const RESOURCES = ['data', 'sensitive_data', 'any', 'policy', 'x'];
const CLASSES = ['high_memory_operations', 'statistical_operations', 'bulk', 'any'];
const STRINGS = ['"secret"', '"public"', '"top_secret"', '"confidential"', '"internal"', '"secret"', '""', '"a\\"b"', '"\\u00e9\\n"', '"😀"', '"\\uD800"'];
const NUMBERS = ['0', '1', '-2', '3.5', '1e3', '007', '1e-7', '9007199254740993'];
const OPERATORS = ['==', '!=', '<', '<=', '>', '>=', '&&', '||'];
const SNIPPETS = [
  '(', ')', '[', ']', '{', '}', '"', '\\', '/*', '*/', '//', '\n', '&&', '||', '|', 'if', 'for', 'policy', 'allow:', 'deny:',
  'require:', 'audit:', ':', ',', '=', '==', '-', '!', '.', '.contains(', 'any(', '|x|', '1e', '1e999', '\u0000', '\uD800',
  '😀', '\u2028', '\t', '\r', ' ', 'x', '_approval for', 'approval for', '"\\u12', '\uFEFF',
];

type Int = (n: number) => number;
type Pick = <T>(items: readonly T[]) => T;

function generatePolicies(int: Int, pick: Pick): string {
  const policies: string[] = [];
  const count = 1 + int(3);
  for (let p = 0; p < count; p++) {
    const rules: string[] = [];
    const ruleCount = int(7);
    for (let r = 0; r < ruleCount; r++) rules.push(generateRule(int, pick));
    policies.push(`policy ${int(20) === 0 ? 'p' : `p${p}`} {\n  ${rules.join('\n  ')}\n}`);
  }
  return policies.join('\n\n');
}

function generateRule(int: Int, pick: Pick): string {
  const condition = int(3) === 0 ? '' : ` if ${expression(int, pick, 0)}`;
  const kind = pick(['allow', 'deny', 'audit', 'require']);
  if (kind !== 'require') return `${kind}: ${target(int, pick)}${condition}`;
  const items: string[] = [];
  const n = 1 + int(4);
  for (let i = 0; i < n; i++) {
    const choice = int(3);
    if (choice === 0) items.push(expression(int, pick, 1));
    else if (choice === 1) items.push(`${pick(['audit_trail', 'k', 'limit'])} = ${literal(int, pick, 0)}`);
    else items.push(`${pick(['supervisor_approval', 'differential_privacy', 'ciso_approval'])} for ${target(int, pick)}`);
  }
  return `require: ${n === 1 && int(2) === 0 ? items[0] : `[${items.join(', ')}]`}${condition}`;
}

function target(int: Int, pick: Pick): string {
  const one = (): string => {
    const choice = int(3);
    if (choice === 0) return 'any';
    if (choice === 1) return pick(CLASSES);
    return `${pick(VERBS)}(${pick(RESOURCES)})`;
  };
  if (int(3) !== 0) return one();
  const items: string[] = [];
  const n = 1 + int(3);
  for (let i = 0; i < n; i++) items.push(one());
  return `[${items.join(', ')}]`;
}

function literal(int: Int, pick: Pick, depth: number): string {
  const choice = int(depth > 2 ? 3 : 4);
  if (choice === 0) return pick(STRINGS);
  if (choice === 1) return pick(NUMBERS);
  if (choice === 2) return pick(['true', 'false']);
  const items: string[] = [];
  const n = int(4);
  for (let i = 0; i < n; i++) items.push(literal(int, pick, depth + 1));
  return `[${items.join(', ')}]`;
}

function path(int: Int, pick: Pick): string {
  const parts = [pick(ROOTS)];
  const n = int(4);
  for (let i = 0; i < n; i++) parts.push(pick(ATTRIBUTES));
  return parts.join('.');
}

function expression(int: Int, pick: Pick, depth: number): string {
  if (depth > 4) return int(2) === 0 ? path(int, pick) : literal(int, pick, 2);
  switch (int(9)) {
    case 0:
      return path(int, pick);
    case 1:
      return literal(int, pick, 0);
    case 2:
    case 3: {
      const operator = pick(OPERATORS);
      const left = expression(int, pick, depth + 1);
      const right = expression(int, pick, depth + 1);
      // Comparisons do not chain: parenthesize their operands (mutations still break this).
      return operator === '&&' || operator === '||' ? `${left} ${operator} ${right}` : `(${left}) ${operator} (${right})`;
    }
    case 4:
      return `!${expression(int, pick, depth + 1)}`;
    case 5:
      return `(${expression(int, pick, depth + 1)})`;
    case 6:
      return `${path(int, pick)}.contains(${expression(int, pick, depth + 1)})`;
    case 7:
      return `${pick(['any', 'all'])}(${path(int, pick)}, |${pick(['d', 'x', 'user'])}| ${expression(int, pick, depth + 1)})`;
    default:
      return `[${expression(int, pick, depth + 1)}, ${expression(int, pick, depth + 1)}]`;
  }
}

function mutate(text: string, int: Int, pick: Pick): string {
  let out = text;
  const rounds = 1 + int(4);
  for (let i = 0; i < rounds; i++) {
    const at = int(out.length + 1);
    const length = 1 + int(12);
    switch (int(7)) {
      case 0:
        out = out.slice(0, at) + out.slice(at + length);
        break;
      case 1:
        out = out.slice(0, at) + pick(SNIPPETS) + out.slice(at);
        break;
      case 2:
        out = out.slice(0, at) + out.slice(at, at + length).repeat(2 + int(3)) + out.slice(at);
        break;
      case 3: {
        const other = int(out.length + 1);
        const [a, b] = at < other ? [at, other] : [other, at];
        out = out.slice(0, a) + out.slice(b, b + length) + out.slice(a + length, b) + out.slice(a, a + length) + out.slice(b + length);
        break;
      }
      case 4:
        out = out.slice(0, at);
        break;
      case 5:
        out = out.slice(0, at) + String.fromCharCode(int(0x10000)) + out.slice(at + 1);
        break;
      default:
        out = out.slice(0, at) + String.fromCharCode(32 + int(95)) + out.slice(at);
        break;
    }
  }
  return out;
}

function nesting(int: Int, pick: Pick): string {
  const depth = 1 + int(2_000);
  const open = pick(['(', '!', '[', '-', 'any(xs, |x| ', 'x.contains(']);
  const chain = int(2) === 0 ? '' : Array.from({ length: int(500) }, () => 'x').join(pick([' && ', ' || ', ' == ']));
  const close = open === '[' ? ']' : open === '(' || open.endsWith('(') || open.endsWith('| ') ? ')' : '';
  return `policy p { allow: read(x) if ${open.repeat(depth)}y${chain}${close.repeat(depth)} }`;
}

function noise(int: Int): string {
  const length = int(200);
  let out = '';
  for (let i = 0; i < length; i++) out += String.fromCharCode(int(3) === 0 ? int(0x10000) : 32 + int(95));
  return out;
}

/** A small, fast, seedable PRNG (Tommy Ettinger's mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
