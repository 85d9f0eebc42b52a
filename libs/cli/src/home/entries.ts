/**
 * The signed directory entries enrolment produced, kept beside the keys
 * (`<keys>/entries/<principal>.v<version>.entry`, the wire bytes in base64) so that a lost or
 * edited entry in BULWARK_DIRECTORY can be put back (`bulwark recover`) by someone without the
 * root key: the entries are public and signed; whoever republishes them checks the signature
 * against the pinned root first, so an altered file is never published.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSignedDirectoryEntry, encodeSignedDirectoryEntry, type SignedDirectoryEntry } from '@bulwark/envelope';

export const ENTRIES_DIR = 'entries';
const ENTRY_FILE = /^(.+)\.v([1-9][0-9]{0,9})\.entry$/;

export function entriesDir(keysDir: string): string {
  return join(keysDir, ENTRIES_DIR);
}

/** Writes (or rewrites, atomically) one principal's signed entry of one version. */
export function saveSignedEntry(keysDir: string, signed: SignedDirectoryEntry): string {
  const dir = entriesDir(keysDir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, `${signed.entry.id}.v${signed.entry.keyVersion}.entry`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${Buffer.from(encodeSignedDirectoryEntry(signed)).toString('base64')}\n`, { mode: 0o644 });
  renameSync(tmp, file);
  return file;
}

export interface StoredEntry {
  readonly file: string;
  readonly principal: string;
  readonly version: number;
  /** The decoded entry, or why the file does not decode (it is then never published). */
  readonly signed?: SignedDirectoryEntry;
  readonly bytes?: Uint8Array;
  readonly problem?: string;
}

/** The latest stored entry of each principal (by the version in its name), sorted by principal. */
export function latestStoredEntries(keysDir: string): StoredEntry[] {
  let names: string[];
  try {
    names = readdirSync(entriesDir(keysDir));
  } catch {
    return [];
  }
  const latest = new Map<string, { name: string; version: number }>();
  for (const name of names) {
    const match = ENTRY_FILE.exec(name);
    if (match === null) continue;
    const version = Number(match[2]);
    const held = latest.get(match[1]!);
    if (held === undefined || held.version < version) latest.set(match[1]!, { name, version });
  }
  return [...latest.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([principal, { name, version }]) => {
      const file = join(entriesDir(keysDir), name);
      try {
        const bytes = new Uint8Array(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'));
        const signed = decodeSignedDirectoryEntry(bytes);
        if (signed.entry.id !== principal || signed.entry.keyVersion !== version) return { file, principal, version, problem: `${name} holds the entry of ${signed.entry.id} v${signed.entry.keyVersion}` };
        return { file, principal, version, signed, bytes };
      } catch (error) {
        return { file, principal, version, problem: `${name} does not decode (${error instanceof Error ? error.message : String(error)})` };
      }
    });
}
