import { isValidId } from '@bulwark/envelope';
import { KeyStoreInputError } from './errors.js';

/**
 * Principal ids (DESIGN §3), the one place their syntax is decided:
 *   svc.<service>     a Bulwark service, `svc.policy`, `svc.audit-ledger` (bus `ServicePrincipals`)
 *   agent.<uuid>      an AI agent, by its lowercase RFC 9562 UUID
 *   analyst.<name>    a SOC analyst
 * Every id is also a valid envelope id (`isValidId`) and a valid NATS KV key
 * (`[-/_=.a-zA-Z0-9]`), so the directory can store an entry under its own id. Lowercase
 * only: two ids that differ by case would be two principals a person reads as one.
 */
export type PrincipalKind = 'svc' | 'agent' | 'analyst';

export interface PrincipalId {
  readonly id: string;
  readonly kind: PrincipalKind;
  readonly name: string;
}

/** The root signing key's owner in a key store; never a directory principal. */
export const ROOT_KEY_OWNER = 'root';

const PATTERNS: Readonly<Record<PrincipalKind, RegExp>> = {
  svc: /^[a-z][a-z0-9-]{0,62}$/,
  agent: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  analyst: /^[a-z][a-z0-9_-]{0,62}$/,
};

const SHAPES: Readonly<Record<PrincipalKind, string>> = {
  svc: 'svc.<service> (lowercase letters, digits, -)',
  agent: 'agent.<uuid> (lowercase hex 8-4-4-4-12)',
  analyst: 'analyst.<name> (lowercase letters, digits, _ and -)',
};

function isKind(text: string): text is PrincipalKind {
  return Object.hasOwn(PATTERNS, text);
}

/** The parsed id, or undefined when `id` is not a principal id. */
export function parsePrincipalId(id: string): PrincipalId | undefined {
  const dot = id.indexOf('.');
  if (dot < 0 || !isValidId(id)) return undefined;
  const kind = id.slice(0, dot);
  const name = id.slice(dot + 1);
  if (!isKind(kind) || !PATTERNS[kind].test(name)) return undefined;
  return { id, kind, name };
}

export function isPrincipalId(id: string): boolean {
  return parsePrincipalId(id) !== undefined;
}

/** The parsed id, or a one-line `E_PRINCIPAL_ID` naming where the id came from. */
export function requirePrincipalId(id: string, where: string): PrincipalId {
  const parsed = parsePrincipalId(id);
  if (parsed !== undefined) return parsed;
  const shown = JSON.stringify(id.length > 60 ? `${id.slice(0, 60)}…` : id);
  throw new KeyStoreInputError('E_PRINCIPAL_ID', `${where}: ${shown} is not a principal id; expected ${Object.values(SHAPES).join(', ')}`, { where });
}

/** A key owner in a store: a principal, or the root key's `root`. */
export function isKeyOwner(id: string): boolean {
  return id === ROOT_KEY_OWNER || isPrincipalId(id);
}
