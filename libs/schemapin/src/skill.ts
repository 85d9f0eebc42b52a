/**
 * Skill-folder signing (v1.3, protocol note §9). Walk the folder (skipping `.schemapin.sig`
 * and symlinks), paths relative with `/`; per file the hex SHA-256 of (path UTF-8 bytes ||
 * file bytes) into a manifest `path → sha256:<hex>`; the root is SHA-256 of the hex digests
 * concatenated in sorted-path order. The signature is over the root digest with the schema
 * convention (ECDSA-SHA256 over the 32 bytes). Verification follows the schema flow
 * (discovery, key, revocation, pin, root, signature, expiry) and pins only after the
 * signature verified unless `pinning: 'reference'`.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { verifyDnsMatch, type DnsTxtRecord } from './dns.js';
import { ErrorCode, SchemaPinError } from './errors.js';
import { isJsonObject, parseJsonBytes, type JsonObject } from './json.js';
import { keyFingerprint, loadPrivateKey, publicPemOf } from './keys.js';
import type { KeyPinStore } from './pin-store.js';
import type { RevocationDocument } from './revocation.js';
import { signMessage, verifyMessage } from './signature.js';
import { applyExpirationCheck, trustedDiscoveryKey, type VerificationResult } from './verify.js';

export const SIGNATURE_FILENAME = '.schemapin.sig';
/** Bounds on what a skill folder may hold, so a hostile folder cannot exhaust memory. */
export const MAX_SKILL_FILES = 10_000;
export const MAX_SKILL_BYTES = 64 * 1024 * 1024;

export interface SkillCanonical {
  readonly rootHash: Buffer;
  readonly manifest: Record<string, string>;
}

/** The SDK's `canonicalizeSkill`. Throws schema_canonicalization_failed for an empty or oversized folder. */
export function canonicalizeSkill(skillDir: string): SkillCanonical {
  const base = resolve(skillDir);
  const manifest: Record<string, string> = {};
  let files = 0;
  let bytes = 0;
  const walk = (dir: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true });
    const subdirs: string[] = [];
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const full = join(dir, entry.name);
      if (entry.isSymbolicLink() || lstatSync(full).isSymbolicLink()) continue;
      if (entry.isDirectory()) {
        subdirs.push(full);
        continue;
      }
      if (!entry.isFile() || entry.name === SIGNATURE_FILENAME) continue;
      const rel = relative(base, full).split('\\').join('/');
      const data = readFileSync(full);
      files++;
      bytes += data.byteLength;
      if (files > MAX_SKILL_FILES || bytes > MAX_SKILL_BYTES) {
        throw new SchemaPinError(ErrorCode.schemaCanonicalizationFailed, `skill folder ${skillDir} holds more than ${MAX_SKILL_FILES} files or ${MAX_SKILL_BYTES} bytes`);
      }
      manifest[rel] = `sha256:${createHash('sha256').update(Buffer.from(rel, 'utf8')).update(data).digest('hex')}`;
    }
    for (const sub of subdirs) walk(sub);
  };
  walk(base);
  const paths = Object.keys(manifest).sort();
  if (paths.length === 0) throw new SchemaPinError(ErrorCode.schemaCanonicalizationFailed, `Skill directory is empty or contains no signable files: ${skillDir}`);
  const rootHash = createHash('sha256')
    .update(paths.map((p) => manifest[p]!.slice('sha256:'.length)).join(''), 'utf8')
    .digest();
  return { rootHash, manifest };
}

/** The skill name from SKILL.md frontmatter `name:`, else the folder name. */
export function parseSkillName(skillDir: string): string {
  const path = join(resolve(skillDir), 'SKILL.md');
  if (existsSync(path)) {
    const fm = /^---\s*\n([\s\S]*?)\n---/.exec(readFileSync(path, 'utf8'));
    const name = fm === null ? null : /^name:\s*['"]?([^'"#\n]+?)['"]?\s*$/m.exec(fm[1]!);
    if (name) return name[1]!.trim();
  }
  return basename(resolve(skillDir));
}

export interface SignSkillOptions {
  readonly signerKid?: string;
  readonly skillName?: string;
  /** Lifetime in ms; writes `expires_at` and schemapin_version "1.4". */
  readonly expiresInMs?: number;
  readonly now?: () => number;
  /** Write `.schemapin.sig` into the folder (default true). */
  readonly write?: boolean;
}

const rfc3339Seconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Signs a skill folder and writes `.schemapin.sig` (pretty-printed, the SDK's field order). */
export function signSkill(skillDir: string, privateKeyPem: string, domain: string, options: SignSkillOptions = {}): JsonObject {
  const key = loadPrivateKey(privateKeyPem);
  const { rootHash, manifest } = canonicalizeSkill(skillDir);
  const now = (options.now ?? Date.now)();
  const expiresAt = options.expiresInMs === undefined ? null : rfc3339Seconds(now + options.expiresInMs);
  const doc: JsonObject = {
    schemapin_version: expiresAt === null ? '1.3' : '1.4',
    skill_name: options.skillName ?? parseSkillName(skillDir),
    skill_hash: `sha256:${rootHash.toString('hex')}`,
    signature: signMessage(rootHash, key),
    signed_at: rfc3339Seconds(now),
    ...(expiresAt === null ? {} : { expires_at: expiresAt }),
    domain,
    signer_kid: options.signerKid ?? keyFingerprint(publicPemOf(key)),
    file_manifest: manifest,
  };
  if (options.write !== false) writeFileSync(join(resolve(skillDir), SIGNATURE_FILENAME), `${JSON.stringify(doc, null, 2)}\n`, 'utf8');
  return doc;
}

export function loadSkillSignature(skillDir: string): JsonObject {
  const path = join(resolve(skillDir), SIGNATURE_FILENAME);
  const value = parseJsonBytes(readFileSync(path), path, { maxBytes: 4 * 1024 * 1024 });
  if (!isJsonObject(value)) throw new SchemaPinError(ErrorCode.signatureInvalid, `${path} is not a JSON object`);
  return value;
}

export interface VerifySkillOptions {
  readonly signature?: JsonObject;
  readonly revocation?: RevocationDocument | null;
  readonly pinStore?: KeyPinStore | null;
  readonly toolId?: string;
  readonly dnsTxt?: DnsTxtRecord | null;
  readonly pinning?: 'after_verify' | 'reference';
  readonly now?: () => number;
}

/** The SDK's `verifySkillOffline` (and `...WithDns` when `dnsTxt` is given). */
export function verifySkillOffline(skillDir: string, discovery: unknown, options: VerifySkillOptions = {}): VerificationResult {
  let sig: JsonObject;
  try {
    sig = options.signature ?? loadSkillSignature(skillDir);
  } catch {
    return { valid: false, domain: '', error_code: ErrorCode.signatureInvalid, error_message: 'No .schemapin.sig found in skill directory' };
  }
  const domain = typeof sig.domain === 'string' ? sig.domain : '';
  const toolId = options.toolId ?? (typeof sig.skill_name === 'string' && sig.skill_name !== '' ? sig.skill_name : basename(resolve(skillDir)));
  try {
    const key = trustedDiscoveryKey(discovery, options.revocation ?? null);
    const store = options.pinStore ?? null;
    const reference = options.pinning === 'reference';
    const pin = store === null ? null : reference ? store.checkAndPin(toolId, domain, key.fingerprint) : store.check(toolId, domain, key.fingerprint);
    if (pin === 'changed') throw new SchemaPinError(ErrorCode.keyPinMismatch, 'Key fingerprint changed since last use');
    const { rootHash } = canonicalizeSkill(skillDir);
    if (!verifyMessage(rootHash, sig.signature ?? '', key.key)) throw new SchemaPinError(ErrorCode.signatureInvalid, 'Signature verification failed');
    if (options.dnsTxt) verifyDnsMatch(discovery, options.dnsTxt);
    if (store !== null && !reference && pin === 'first_use') store.checkAndPin(toolId, domain, key.fingerprint);
    const disc = discovery as Record<string, unknown>;
    const result: VerificationResult = {
      valid: true,
      domain,
      developer_name: typeof disc.developer_name === 'string' && disc.developer_name !== '' ? disc.developer_name : null,
      key_pinning: pin === null ? null : { status: pin },
      warnings: [],
      key_fingerprint: key.fingerprint,
    };
    const expires = sig.expires_at;
    return applyExpirationCheck(result, typeof expires === 'string' ? expires : expires === undefined || expires === null ? null : String(expires), (options.now ?? Date.now)());
  } catch (err) {
    if (err instanceof SchemaPinError) return { valid: false, domain, error_code: err.errorCode, error_message: err.message };
    throw err;
  }
}

/** Files whose hash differs from the signed manifest, or that were added or removed. */
export function detectTamperedFiles(skillDir: string, signedManifest: Record<string, string>): { modified: string[]; added: string[]; removed: string[] } {
  const { manifest } = canonicalizeSkill(skillDir);
  const modified = Object.keys(manifest).filter((p) => p in signedManifest && signedManifest[p] !== manifest[p]).sort();
  const added = Object.keys(manifest).filter((p) => !(p in signedManifest)).sort();
  const removed = Object.keys(signedManifest).filter((p) => !(p in manifest)).sort();
  return { modified, added, removed };
}

/** v1.4 lineage between two skill signatures: `cur.previous_hash == prev.skill_hash`. */
export function verifyChain(current: JsonObject, previous: JsonObject): { valid: true } | { valid: false; error: 'no_previous_hash' | 'mismatch' } {
  if (typeof current.previous_hash !== 'string' || current.previous_hash === '') return { valid: false, error: 'no_previous_hash' };
  return current.previous_hash === previous.skill_hash ? { valid: true } : { valid: false, error: 'mismatch' };
}
