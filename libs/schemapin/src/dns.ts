/**
 * The v1.4 DNS TXT cross-check (protocol note §10): `_schemapin.<domain>` holds
 * `v=schemapin1; kid=<optional>; fp=sha256:<hex>`. Spaces around `;` and `=` are
 * tolerated, order is free, unknown fields are ignored. No record has no effect; a record
 * whose fingerprint differs from the discovery key is domain_mismatch (fail closed); a
 * malformed one is discovery_invalid. Lookups go to the resolvers given (tests run their
 * own on 127.0.0.1), with a timeout.
 */
import { Resolver } from 'node:dns/promises';
import { ErrorCode, SchemaPinError } from './errors.js';
import { isJsonObject } from './json.js';
import { keyFingerprint } from './keys.js';

export interface DnsTxtRecord {
  readonly version: string;
  readonly kid: string | null;
  readonly fingerprint: string;
}

const HEX = /^[0-9a-fA-F]+$/;

/** `_schemapin.<domain>`, one trailing dot stripped. */
export function txtRecordName(domain: string): string {
  return `_schemapin.${domain.endsWith('.') ? domain.slice(0, -1) : domain}`;
}

function invalid(message: string): SchemaPinError {
  return new SchemaPinError(ErrorCode.discoveryInvalid, message);
}

/** Parses a TXT value; throws discovery_invalid with the SDK's messages. */
export function parseTxtRecord(txt: string): DnsTxtRecord {
  const fields = new Map<string, string>();
  for (const part of txt.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    if (!fields.has(key)) fields.set(key, part.slice(eq + 1).trim());
  }
  const version = fields.get('v');
  if (version === undefined) throw invalid("DNS TXT record missing required 'v' field");
  if (version !== 'schemapin1') throw invalid(`DNS TXT unsupported version: ${version}`);
  const fp = fields.get('fp');
  if (fp === undefined || fp === '') throw invalid("DNS TXT record missing required 'fp' field");
  if (!fp.toLowerCase().startsWith('sha256:') || !HEX.test(fp.slice(7))) throw invalid(`DNS TXT 'fp' must be sha256:<hex>: ${fp}`);
  const kid = fields.get('kid');
  return { version, kid: kid === undefined || kid === '' ? null : kid, fingerprint: fp.toLowerCase() };
}

/** Throws domain_mismatch unless the TXT fingerprint is the discovery key's. */
export function verifyDnsMatch(discovery: unknown, txt: DnsTxtRecord): void {
  const pem = isJsonObject(discovery) ? discovery.public_key_pem : undefined;
  if (typeof pem !== 'string') throw invalid('Discovery document missing or invalid public_key_pem');
  const fingerprint = keyFingerprint(pem);
  if (fingerprint !== txt.fingerprint) {
    throw new SchemaPinError(ErrorCode.domainMismatch, `DNS TXT fingerprint mismatch: discovery=${fingerprint}, dns=${txt.fingerprint}`);
  }
}

export interface DnsOptions {
  /** Resolver addresses (`ip` or `ip:port`); required, so the system resolver is never used by accident. */
  readonly servers: readonly string[];
  readonly timeoutMs?: number;
}

/**
 * Looks up `_schemapin.<domain>` and parses the first record holding `v=schemapin1` (its
 * chunks joined). Returns null when there is no such record; a resolver failure or timeout
 * is discovery_fetch_failed, so a caller that requires the check fails closed.
 */
export async function fetchDnsTxt(domain: string, options: DnsOptions): Promise<DnsTxtRecord | null> {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2000, tries: 1 });
  resolver.setServers([...options.servers]);
  let records: string[][];
  try {
    records = await resolver.resolveTxt(txtRecordName(domain));
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return null;
    throw new SchemaPinError(ErrorCode.discoveryFetchFailed, `DNS TXT lookup of ${txtRecordName(domain)} failed: ${code ?? String(cause)}`, {}, { cause });
  }
  const record = records.map((chunks) => chunks.join('')).find((text) => text.includes('v=schemapin1'));
  return record === undefined ? null : parseTxtRecord(record);
}
