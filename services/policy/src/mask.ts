import { createHmac } from 'node:crypto';

/**
 * Masks configured request fields before a decision is logged (OPA decision-log style
 * `mask` of dotted paths). A path names object members from the request root, e.g.
 * `context.user.ssn`; a path through a list applies to every element (`context.users.ssn`
 * masks each user's ssn). With a key, the value becomes `hmac-sha256:<hex>` of its JSON
 * text, so equal values can still be correlated across decisions without being revealed;
 * without, it becomes `"***"`. The input is not modified.
 */
export interface MaskOptions {
  readonly paths: readonly string[];
  readonly key?: Uint8Array;
}

export const MASKED = '***';

export function createMasker(options: MaskOptions): (request: unknown) => unknown {
  const paths = options.paths.map((p) => p.split('.')).filter((parts) => parts.length > 0 && parts.every((s) => s !== ''));
  if (paths.length === 0) return (request) => request;
  const key = options.key;
  const replace = (value: unknown): string =>
    key === undefined ? MASKED : `hmac-sha256:${createHmac('sha256', key).update(JSON.stringify(value) ?? 'null').digest('hex')}`;
  return (request) => {
    let out = request;
    for (const path of paths) out = maskPath(out, path, 0, replace);
    return out;
  };
}

function maskPath(value: unknown, path: readonly string[], at: number, replace: (v: unknown) => string): unknown {
  if (Array.isArray(value)) {
    let changed = false;
    const next = value.map((v) => {
      const m = maskPath(v, path, at, replace);
      if (m !== v) changed = true;
      return m;
    });
    return changed ? next : value;
  }
  if (typeof value !== 'object' || value === null) return value;
  const name = path[at]!;
  const record = value as Record<string, unknown>;
  if (!Object.hasOwn(record, name)) return value;
  const inner = record[name];
  const masked = at === path.length - 1 ? replace(inner) : maskPath(inner, path, at + 1, replace);
  return masked === inner ? value : { ...record, [name]: masked };
}
