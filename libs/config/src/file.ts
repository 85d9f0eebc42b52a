import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { z } from 'zod';
import { showValue } from './display.js';
import { settingEntries, settings, type ConfigKey, type SectionName } from './settings.js';
import { keyLines } from './toml-lines.js';
import { closest } from './suggest.js';

/** A problem found in the file, with the line it is on when known (for ordering). */
interface FileProblem {
  readonly line: number;
  readonly message: string;
}

/** The file's values by key, validated one by one, and the problems found. */
export interface FileValues {
  readonly values: ReadonlyMap<ConfigKey, unknown>;
  readonly problems: readonly string[];
}

const sectionNames = Object.keys(settings) as SectionName[];

const fileSchema = z.strictObject(
  Object.fromEntries(
    sectionNames.map((section) => [
      section,
      z.strictObject(Object.fromEntries(Object.entries(settings[section]).map(([name, setting]) => [name, setting.schema.optional()]))).optional(),
    ]),
  ),
);

function readText(path: string): string | FileProblem {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
    return { line: 0, message: `config file ${path} ${why}` };
  }
}

/** Reads and validates the TOML file; problems name `path:line: key`, the value and what is allowed. */
export function readConfigFile(path: string): FileValues {
  const text = readText(path);
  if (typeof text !== 'string') return { values: new Map(), problems: [text.message] };
  let document: Record<string, unknown>;
  try {
    document = parse(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error';
    return { values: new Map(), problems: [`${path}:${err.line}:${err.column}: invalid TOML: ${reason}`] };
  }

  const lines = keyLines(text);
  const where = (dotted: string): { line: number; at: string } => {
    const line = lines.get(dotted) ?? lines.get(dotted.split('.')[0] ?? '') ?? 0;
    return { line, at: line > 0 ? `${path}:${line}` : path };
  };

  const problems: FileProblem[] = [];
  const reported = new Set<string>();
  for (const issue of fileSchema.safeParse(document).error?.issues ?? []) {
    const [section, name] = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push(unknownKey(section, key, document, where));
      continue;
    }
    if (section === undefined) continue;
    const dotted = name === undefined ? section : `${section}.${name}`;
    if (reported.has(dotted)) continue;
    reported.add(dotted);
    const { line, at } = where(dotted);
    if (name === undefined) {
      problems.push({ line, message: `${at}: ${section} = ${showValue(document[section], 'file', false)} is not allowed; expected a table [${section}]` });
      continue;
    }
    const entry = settingEntries.find((e) => e.key === dotted);
    const value = (document[section] as Record<string, unknown>)[name];
    const expected = entry?.setting.expected('file') ?? 'a valid value';
    const shown = showValue(value, 'file', entry?.setting.kind === 'url');
    problems.push({ line, message: `${at}: ${dotted} = ${shown} is not allowed; expected ${expected}` });
  }

  const values = new Map<ConfigKey, unknown>();
  for (const { section, name, key } of settingEntries) {
    const table = document[section];
    if (typeof table !== 'object' || table === null || reported.has(section) || reported.has(key)) continue;
    if (Object.hasOwn(table, name)) values.set(key, (table as Record<string, unknown>)[name]);
  }
  // Stable sort: problems without a known line keep their place at the front.
  problems.sort((a, b) => a.line - b.line);
  return { values, problems: problems.map((p) => p.message) };
}

function unknownKey(
  section: string | undefined,
  key: string,
  document: Record<string, unknown>,
  where: (dotted: string) => { line: number; at: string },
): FileProblem {
  if (section === undefined) {
    const { line, at } = where(key);
    const value = document[key];
    const isTable = typeof value === 'object' && value !== null && !Array.isArray(value);
    const what = isTable ? `unknown table [${key}]` : `unknown key ${key}`;
    return { line, message: `${at}: ${what}; ${suggestion(key, sectionNames, (s) => `[${s}]`)}` };
  }
  const { line, at } = where(`${section}.${key}`);
  const known = Object.keys(settings[section as SectionName]);
  return { line, message: `${at}: unknown key ${section}.${key}; ${suggestion(key, known, (k) => `${section}.${k}`)}` };
}

function suggestion(name: string, known: readonly string[], format: (name: string) => string): string {
  const near = closest(name, known);
  return near === undefined ? `expected one of: ${known.join(', ')}` : `did you mean ${format(near)}?`;
}
