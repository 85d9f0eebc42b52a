/**
 * Compliance frameworks as data (seed S4.3): which event types a period must contain,
 * which detail fields each event type must carry, which detail values access to data
 * must show (access control), and how long the trail is kept. HIPAA, GDPR and SOX ship
 * as files in `frameworks/`; a custom framework is a TOML or JSON file of the same shape.
 * Every key is checked; an unknown key is an error (a misspelt requirement must not
 * silently require nothing), and errors name the file and the key.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { InputError } from '@bulwark/errors';
import { isEventType, type EventType } from '@bulwark/events';

export type DetailValue = string | number | boolean;

/** Events of these types (matching `where`) must carry `requiredDetails`; the period needs at least `minEvents` of them. */
export interface EventRequirement {
  readonly id: string;
  readonly description: string;
  readonly eventTypes: readonly EventType[];
  readonly where: Readonly<Record<string, DetailValue>>;
  readonly requiredDetails: readonly string[];
  readonly minEvents: number;
}

/** Events of these types (matching `where`) must show `detail` with one of `allowed` (e.g. decision = "allow"). */
export interface AccessControlRequirement {
  readonly id: string;
  readonly description: string;
  readonly eventTypes: readonly EventType[];
  readonly where: Readonly<Record<string, DetailValue>>;
  readonly detail: string;
  readonly allowed: readonly DetailValue[];
}

export interface ComplianceFramework {
  readonly id: string;
  readonly name: string;
  readonly retentionDays: number;
  readonly requirements: readonly EventRequirement[];
  readonly accessControls: readonly AccessControlRequirement[];
}

export const BUILTIN_FRAMEWORKS = ['hipaa', 'gdpr', 'sox'] as const;
export type BuiltinFramework = (typeof BUILTIN_FRAMEWORKS)[number];

export function isBuiltinFramework(name: string): name is BuiltinFramework {
  return (BUILTIN_FRAMEWORKS as readonly string[]).includes(name);
}

/** A framework file is wrong: names the file and the key. */
export class FrameworkError extends InputError {
  constructor(file: string, key: string, why: string) {
    super('E_FRAMEWORK', `${file}: ${key}: ${why}`, { file, key });
  }
}

/** Loads `hipaa`, `gdpr`, `sox` or a `.toml` / `.json` file. */
export async function loadFramework(nameOrPath: string): Promise<ComplianceFramework> {
  const builtin = isBuiltinFramework(nameOrPath.toLowerCase());
  // src/compliance/ and dist/compliance/ are both two levels below the package.
  const url = builtin ? new URL(`../../frameworks/${nameOrPath.toLowerCase()}.toml`, import.meta.url) : undefined;
  const label = builtin ? `frameworks/${nameOrPath.toLowerCase()}.toml` : nameOrPath;
  const ext = builtin ? '.toml' : extname(nameOrPath).toLowerCase();
  if (ext !== '.toml' && ext !== '.json') {
    throw new InputError('E_FRAMEWORK', `framework ${JSON.stringify(nameOrPath)}: not one of ${BUILTIN_FRAMEWORKS.join(', ')}, nor a .toml or .json file`, { framework: nameOrPath });
  }
  let text: string;
  try {
    text = await readFile(url ?? nameOrPath, 'utf8');
  } catch (cause) {
    throw new InputError('E_FRAMEWORK', `framework file ${label}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { file: label }, { cause });
  }
  return parseFramework(text, ext === '.toml' ? 'toml' : 'json', label);
}

export function parseFramework(text: string, format: 'toml' | 'json', file: string): ComplianceFramework {
  let data: unknown;
  try {
    data = format === 'toml' ? parseToml(text) : JSON.parse(text);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message.split('\n')[0]! : String(cause);
    throw new InputError('E_FRAMEWORK', `${file}: not valid ${format.toUpperCase()}: ${why}`, { file }, { cause });
  }
  return frameworkOf(data, file);
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function onlyKeys(table: Table, allowed: readonly string[], file: string, at: string): void {
  for (const key of Object.keys(table)) {
    if (!allowed.includes(key)) throw new FrameworkError(file, at === '' ? key : `${at}.${key}`, `unknown key (expected one of: ${allowed.join(', ')})`);
  }
}

function text(table: Table, key: string, file: string, at: string, fallback?: string): string {
  const value = table[key] ?? fallback;
  if (typeof value !== 'string' || value.trim().length === 0) throw new FrameworkError(file, `${at}${key}`, 'must be a non-empty string');
  return value;
}

function wholeNumber(table: Table, key: string, file: string, at: string, min: number, max: number, fallback?: number): number {
  const value = table[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new FrameworkError(file, `${at}${key}`, `must be a whole number from ${min} to ${max}`);
  return value;
}

function list(table: Table, key: string, file: string, at: string, optional: boolean): unknown[] {
  const value = table[key];
  if (value === undefined && optional) return [];
  if (!Array.isArray(value)) throw new FrameworkError(file, `${at}${key}`, 'must be a list');
  return value;
}

const DETAIL_PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;

function detailPath(value: unknown, file: string, key: string): string {
  if (typeof value !== 'string' || !DETAIL_PATH.test(value)) throw new FrameworkError(file, key, 'must be a detail field name (letters, digits, _ and -, dotted for nested fields)');
  return value;
}

function eventTypes(table: Table, file: string, at: string): EventType[] {
  const values = list(table, 'event_types', file, at, false);
  if (values.length === 0) throw new FrameworkError(file, `${at}event_types`, 'must name at least one event type');
  return values.map((value, i) => {
    if (!isEventType(value)) throw new FrameworkError(file, `${at}event_types[${i}]`, `${JSON.stringify(value)} is not a known event type (see @bulwark/events EVENT_TYPES)`);
    return value;
  });
}

function isDetailValue(value: unknown): value is DetailValue {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

function whereOf(table: Table, file: string, at: string): Record<string, DetailValue> {
  const where = table['where'];
  if (where === undefined) return {};
  if (!isTable(where)) throw new FrameworkError(file, `${at}where`, 'must be a table of detail field = value');
  const out: Record<string, DetailValue> = {};
  for (const [key, value] of Object.entries(where)) {
    detailPath(key, file, `${at}where.${key}`);
    if (!isDetailValue(value)) throw new FrameworkError(file, `${at}where.${key}`, 'must be a string, number or boolean');
    out[key] = value;
  }
  return out;
}

function uniqueIds(items: readonly { id: string }[], file: string, key: string): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.id)) throw new FrameworkError(file, `${key}[${i}].id`, `duplicate id ${JSON.stringify(item.id)}`);
    seen.add(item.id);
  });
}

function frameworkOf(data: unknown, file: string): ComplianceFramework {
  if (!isTable(data)) throw new FrameworkError(file, '(top level)', 'must be a table');
  onlyKeys(data, ['id', 'name', 'retention_days', 'requirements', 'access_controls'], file, '');
  const requirements = list(data, 'requirements', file, '', true).map((item, i): EventRequirement => {
    const at = `requirements[${i}].`;
    if (!isTable(item)) throw new FrameworkError(file, `requirements[${i}]`, 'must be a table');
    onlyKeys(item, ['id', 'description', 'event_types', 'where', 'required_details', 'min_events'], file, `requirements[${i}]`);
    return {
      id: text(item, 'id', file, at),
      description: text(item, 'description', file, at),
      eventTypes: eventTypes(item, file, at),
      where: whereOf(item, file, at),
      requiredDetails: list(item, 'required_details', file, at, true).map((d, j) => detailPath(d, file, `${at}required_details[${j}]`)),
      minEvents: wholeNumber(item, 'min_events', file, at, 0, 1_000_000_000, 0),
    };
  });
  const accessControls = list(data, 'access_controls', file, '', true).map((item, i): AccessControlRequirement => {
    const at = `access_controls[${i}].`;
    if (!isTable(item)) throw new FrameworkError(file, `access_controls[${i}]`, 'must be a table');
    onlyKeys(item, ['id', 'description', 'event_types', 'where', 'detail', 'allowed'], file, `access_controls[${i}]`);
    const allowed = list(item, 'allowed', file, at, false);
    if (allowed.length === 0) throw new FrameworkError(file, `${at}allowed`, 'must list at least one allowed value');
    return {
      id: text(item, 'id', file, at),
      description: text(item, 'description', file, at),
      eventTypes: eventTypes(item, file, at),
      where: whereOf(item, file, at),
      detail: detailPath(item['detail'], file, `${at}detail`),
      allowed: allowed.map((v, j) => {
        if (!isDetailValue(v)) throw new FrameworkError(file, `${at}allowed[${j}]`, 'must be a string, number or boolean');
        return v;
      }),
    };
  });
  uniqueIds([...requirements, ...accessControls], file, 'requirements/access_controls');
  if (requirements.length + accessControls.length === 0) throw new FrameworkError(file, 'requirements', 'a framework must have at least one requirement or access control');
  const id = text(data, 'id', file, '');
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(id)) throw new FrameworkError(file, 'id', 'must be lower-case letters, digits, _ and -');
  return {
    id,
    name: text(data, 'name', file, ''),
    retentionDays: wholeNumber(data, 'retention_days', file, '', 1, 36500),
    requirements,
    accessControls,
  };
}

/** A detail value by dotted path; undefined when absent. */
export function detailAt(details: unknown, path: string): unknown {
  let at: unknown = details;
  for (const part of path.split('.')) {
    if (!isTable(at) || !Object.hasOwn(at, part)) return undefined;
    at = at[part];
  }
  return at;
}

/** The longest retention of the frameworks in force and the configured minimum: what an archive must respect. */
export function effectiveRetentionDays(configured: number, frameworks: readonly ComplianceFramework[]): number {
  return Math.max(configured, ...frameworks.map((f) => f.retentionDays));
}
