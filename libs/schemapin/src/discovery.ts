/**
 * `.well-known/schemapin.json` discovery (RFC 8615, protocol note §5) over HTTPS, strict by
 * default: a whole-request timeout, a size limit counted on the wire (the body is dropped
 * at the first byte over it), no redirects (a 3xx is a failure), and no connection to a
 * private, loopback, link-local or otherwise non-public address, checked on the address
 * actually connected to (the checked address is handed to the socket, so a second DNS
 * answer cannot rebind it). Tests point it at 127.0.0.1 only through explicit options
 * (`allowPrivateAddresses`, `ca`, or `allowInsecureHttp` for a plain-HTTP test server).
 * If the discovery document advertises a `revocation_endpoint`, it is fetched the same way
 * and a failure to get it fails the verification (we do not fail open on revocation).
 */
import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { ErrorCode, SchemaPinError, SchemaPinInputError } from './errors.js';
import { isJsonObject, parseJsonBytes, type JsonObject } from './json.js';
import { parseRevocationDocument, type RevocationDocument } from './revocation.js';

export interface FetchOptions {
  /** Whole request deadline (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Largest accepted body (default 256 KiB). */
  readonly maxBytes?: number;
  /** Allow private and loopback addresses (tests only; default false). */
  readonly allowPrivateAddresses?: boolean;
  /** Allow `http://` URLs (tests only; default false). */
  readonly allowInsecureHttp?: boolean;
  /** Extra trusted CA certificates (PEM), e.g. a test server's self-signed certificate. */
  readonly ca?: string | readonly string[];
  /** Host name resolution (default node:dns lookup); every answer is checked. */
  readonly lookup?: typeof dnsLookup;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 5000;
export const DEFAULT_DISCOVERY_MAX_BYTES = 256 * 1024;

// Addresses a discovery fetch must not reach (RFC 6890 special-purpose, RFC 1918, loopback, ...).
const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32], ['100::', 64]] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/** True for addresses a production fetch refuses (IPv4-mapped IPv6 checked as IPv4). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1]!, 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return true;
}

function fetchFailed(url: string, why: string, cause?: unknown): SchemaPinError {
  return new SchemaPinError(ErrorCode.discoveryFetchFailed, `fetching ${url}: ${why}`, { url }, cause === undefined ? undefined : { cause });
}

/** The discovery URL for a domain: `https://<domain>/.well-known/schemapin.json` unless the domain has a scheme. */
export function discoveryUrl(domain: string): string {
  const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(domain) ? domain.replace(/\/+$/, '') : `https://${domain}`;
  return `${base}/.well-known/schemapin.json`;
}

/** GET `url` with every guard above; resolves to the body bytes of a 200 answer. */
export function fetchGuarded(url: string, options: FetchOptions = {}): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_DISCOVERY_MAX_BYTES;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.reject(fetchFailed(url, 'not a valid URL'));
  }
  const insecure = parsed.protocol === 'http:';
  if (parsed.protocol !== 'https:' && !(insecure && options.allowInsecureHttp === true)) {
    return Promise.reject(fetchFailed(url, `${parsed.protocol} is refused, discovery must use https`));
  }
  if (parsed.username !== '' || parsed.password !== '') return Promise.reject(fetchFailed(url, 'credentials in the URL are refused'));
  const allowPrivate = options.allowPrivateAddresses === true;
  const resolve = options.lookup ?? dnsLookup;
  // Every address the socket may connect to is checked here, at connect time.
  const guardedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = (addresses as unknown as { address: string; family: number }[]).filter((a) => allowPrivate || !isNonPublicAddress(a.address));
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname} resolves only to private or loopback addresses`), { code: 'E_PRIVATE_ADDRESS' }), '', 0);
      if ((lookupOptions as { all?: boolean }).all) return (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && !allowPrivate && isNonPublicAddress(host)) {
    return Promise.reject(fetchFailed(url, `${host} is a private or loopback address`));
  }
  return new Promise<Buffer>((resolvePromise, reject) => {
    let settled = false;
    const done = (err: SchemaPinError | null, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolvePromise(body!);
    };
    const requestOptions: https.RequestOptions = {
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'bulwark-schemapin' },
      lookup: guardedLookup,
      ...(options.ca === undefined ? {} : { ca: typeof options.ca === 'string' ? options.ca : [...options.ca] }),
    };
    const req = (insecure ? http : https).request(parsed, requestOptions, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) return done(fetchFailed(url, `redirect ${status} refused (to ${String(res.headers.location ?? '?').slice(0, 200)})`));
      if (status !== 200) return done(fetchFailed(url, `HTTP ${status}`));
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > maxBytes) return done(fetchFailed(url, `body of ${declared} bytes is over the limit of ${maxBytes}`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > maxBytes) return done(fetchFailed(url, `body is over the limit of ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on('end', () => done(null, Buffer.concat(chunks)));
      res.on('error', (err) => done(fetchFailed(url, err.message, err)));
    });
    const timer = setTimeout(() => done(fetchFailed(url, `no complete answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => done(fetchFailed(url, (err as NodeJS.ErrnoException).code === 'E_PRIVATE_ADDRESS' ? err.message : err.message, err)));
    req.end();
  });
}

/** Checks a discovery document's shape (the fields the verifier reads); throws discovery_invalid. */
export function parseDiscovery(value: unknown, what = 'discovery document'): JsonObject {
  if (!isJsonObject(value)) throw new SchemaPinError(ErrorCode.discoveryInvalid, `${what} must be a JSON object`);
  if (typeof value.public_key_pem !== 'string') throw new SchemaPinError(ErrorCode.discoveryInvalid, `${what} has no public_key_pem string`);
  if (value.revoked_keys !== undefined && value.revoked_keys !== null && !Array.isArray(value.revoked_keys)) {
    throw new SchemaPinError(ErrorCode.discoveryInvalid, `${what} revoked_keys must be an array`);
  }
  return value;
}

async function fetchJson(url: string, options: FetchOptions, what: string): Promise<unknown> {
  const body = await fetchGuarded(url, options);
  try {
    return parseJsonBytes(body, what, { maxBytes: options.maxBytes ?? DEFAULT_DISCOVERY_MAX_BYTES });
  } catch (err) {
    if (err instanceof SchemaPinInputError) throw new SchemaPinError(ErrorCode.discoveryInvalid, err.message, {}, { cause: err });
    throw err;
  }
}

export interface Discovered {
  readonly discovery: JsonObject;
  readonly revocation: RevocationDocument | null;
}

/** Fetches a domain's discovery document and, when it names one, its revocation document. */
export async function fetchDiscovery(domain: string, options: FetchOptions = {}): Promise<Discovered> {
  const url = discoveryUrl(domain);
  const discovery = parseDiscovery(await fetchJson(url, options, url), url);
  const endpoint = discovery.revocation_endpoint;
  if (typeof endpoint !== 'string' || endpoint === '') return { discovery, revocation: null };
  let revUrl: string;
  try {
    revUrl = new URL(endpoint, url).toString();
  } catch {
    throw new SchemaPinError(ErrorCode.discoveryInvalid, `${url}: revocation_endpoint is not a URL`);
  }
  const revocation = parseRevocationDocument(await fetchJson(revUrl, options, revUrl));
  return { discovery, revocation };
}

/** The SDK's `createWellKnownResponse`. */
export function createWellKnownResponse(
  publicKeyPem: string,
  developerName: string,
  contact?: string,
  revokedKeys?: readonly string[],
  schemaVersion = '1.2',
  revocationEndpoint?: string,
): JsonObject {
  const doc: JsonObject = { schema_version: schemaVersion, developer_name: developerName, public_key_pem: publicKeyPem };
  if (contact !== undefined) doc.contact = contact;
  if (revokedKeys !== undefined && revokedKeys.length > 0) doc.revoked_keys = [...revokedKeys];
  if (revocationEndpoint !== undefined) doc.revocation_endpoint = revocationEndpoint;
  return doc;
}
