/** What a request value is, in the words errors use. JSON has these six; anything else is refused. */
export type ValueType = 'string' | 'number' | 'boolean' | 'null' | 'list' | 'object' | 'unsupported';

export function typeOfValue(value: unknown): ValueType {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'number':
      // NaN and infinities cannot come from JSON; a caller passing them gets an error, not an order.
      return Number.isFinite(value) ? 'number' : 'unsupported';
    case 'boolean':
      return 'boolean';
    case 'object':
      return value === null ? 'null' : Array.isArray(value) ? 'list' : 'object';
    default:
      return 'unsupported';
  }
}

export function describeValue(value: unknown): string {
  switch (typeOfValue(value)) {
    case 'string':
      return `a string ${JSON.stringify(shorten(value as string))}`;
    case 'number':
      return `a number ${String(value)}`;
    case 'boolean':
      return `a boolean ${String(value)}`;
    case 'null':
      return 'null';
    case 'list':
      return 'a list';
    case 'object':
      return 'an object';
    case 'unsupported':
      return `an unsupported value (${typeof value})`;
  }
}

/** Structural equality of two JSON values; values of different types are simply unequal. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return typeOfValue(a) !== 'unsupported';
  const type = typeOfValue(a);
  if (type !== typeOfValue(b)) return false;
  if (type === 'list') {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!deepEqual(x[i], y[i])) return false;
    return true;
  }
  if (type === 'object') {
    const x = a as Record<string, unknown>;
    const y = b as Record<string, unknown>;
    const keys = Object.keys(x);
    if (keys.length !== Object.keys(y).length) return false;
    for (const key of keys) if (!Object.hasOwn(y, key) || !deepEqual(x[key], y[key])) return false;
    return true;
  }
  return false;
}

function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
