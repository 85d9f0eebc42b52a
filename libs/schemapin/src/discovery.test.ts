/**
 * Discovery against hostile servers, all on 127.0.0.1: a local HTTPS server with a
 * self-signed certificate (trusted through the `ca` option), redirects, a server that never
 * answers, a 100 MB body, a loopback address without the test allowance. Each gives a clear
 * discovery_fetch_failed, and nothing is pinned.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readVectorJson } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchDiscovery, fetchDnsTxt, isNonPublicAddress, KeyPinStore, SchemaPinError, verifySchemaOffline, type JsonObject } from './index.js';

const gen = 'schemapin/generated';
// The vector names a revocation endpoint on tools.example.com; these servers serve their own.
const { revocation_endpoint: _endpoint, ...wellKnown } = readVectorJson<JsonObject>(gen, 'well-known/tools.example.com.schemapin.json');
const revocationDoc = readVectorJson<JsonObject>(gen, 'well-known/tools.example.com.schemapin-revocations.json');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const routes = new Map<string, Handler>();
const requested: string[] = [];
let server: https.Server;
let plain: http.Server;
let ca: string;
let port: number;
let plainPort: number;
let certDir: string;

const dispatch: Handler = (req, res) => {
  requested.push(req.url ?? '');
  const handler = routes.get(req.url ?? '');
  if (handler) handler(req, res);
  else res.writeHead(404).end();
};

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'schemapin-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  ca = readFileSync(join(certDir, 'cert.pem'), 'utf8');
  server = https.createServer({ key: readFileSync(join(certDir, 'key.pem')), cert: ca }, dispatch);
  plain = http.createServer(dispatch);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  plainPort = (plain.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  plain.closeAllConnections();
  await new Promise((r) => server.close(r));
  await new Promise((r) => plain.close(r));
  rmSync(certDir, { recursive: true, force: true });
});

const json = (body: unknown): Handler => (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const testOptions = () => ({ ca, allowPrivateAddresses: true, timeoutMs: 1500 });
const domain = () => `localhost:${port}`;

async function failure(promise: Promise<unknown>): Promise<SchemaPinError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SchemaPinError);
  return err as SchemaPinError;
}

describe('fetchDiscovery', () => {
  it('fetches the document and its revocation endpoint over HTTPS (test CA), and the revoked key is refused', async () => {
    routes.set('/.well-known/schemapin.json', json({ ...wellKnown, revocation_endpoint: '/.well-known/schemapin-revocations.json' }));
    routes.set('/.well-known/schemapin-revocations.json', json({ ...revocationDoc, revoked_keys: [{ fingerprint: 'sha256:1807c8ba0d5e153ae2bccb93245963106919f54a2bf645c361e36b8df25cdb1c', revoked_at: '2026-02-10T00:00:00Z', reason: 'key_compromise' }] }));
    const { discovery, revocation } = await fetchDiscovery(domain(), testOptions());
    expect(discovery.developer_name).toBe('Example Tools Inc');
    const c = readVectorJson<{ cases: { schema: unknown; signature: string }[] }>(gen, 'schema-signature-cases.json').cases[0]!;
    const pins = new KeyPinStore();
    expect(verifySchemaOffline(c.schema, c.signature, 'tools.example.com', 't', discovery, revocation, pins)).toMatchObject({ valid: false, error_code: 'key_revoked' });
    expect(pins.size).toBe(0);
  });

  it('fails closed when the advertised revocation endpoint cannot be fetched', async () => {
    routes.set('/.well-known/schemapin.json', json({ ...wellKnown, revocation_endpoint: '/missing.json' }));
    expect((await failure(fetchDiscovery(domain(), testOptions()))).errorCode).toBe('discovery_fetch_failed');
  });

  it('refuses loopback and private addresses unless the test allowance is given', async () => {
    routes.set('/.well-known/schemapin.json', json(wellKnown));
    const err = await failure(fetchDiscovery(domain(), { ca, timeoutMs: 1500 }));
    expect(err.errorCode).toBe('discovery_fetch_failed');
    expect(err.message).toMatch(/private or loopback/);
    expect((await failure(fetchDiscovery(`127.0.0.1:${port}`, { ca }))).message).toMatch(/127\.0\.0\.1 is a private or loopback address/);
    for (const a of ['10.1.2.3', '192.168.0.1', '172.16.5.5', '169.254.169.254', '::1', 'fe80::1', '::ffff:127.0.0.1', 'fd00::1', '0.0.0.0']) expect(isNonPublicAddress(a), a).toBe(true);
    for (const a of ['93.184.216.34', '2606:2800:220:1::1']) expect(isNonPublicAddress(a), a).toBe(false);
  });

  it('refuses a certificate it does not trust', async () => {
    routes.set('/.well-known/schemapin.json', json(wellKnown));
    expect((await failure(fetchDiscovery(domain(), { allowPrivateAddresses: true }))).errorCode).toBe('discovery_fetch_failed');
  });

  it('does not follow a redirect', async () => {
    routes.set('/.well-known/schemapin.json', (_req, res) => void res.writeHead(302, { location: '/elsewhere.json' }).end());
    routes.set('/elsewhere.json', json(wellKnown));
    requested.length = 0;
    const err = await failure(fetchDiscovery(domain(), testOptions()));
    expect(err.message).toMatch(/redirect 302 refused/);
    expect(requested).toEqual(['/.well-known/schemapin.json']);
  });

  it('gives up on a server that never answers, within the timeout', async () => {
    routes.set('/.well-known/schemapin.json', () => undefined);
    const started = Date.now();
    const err = await failure(fetchDiscovery(domain(), { ...testOptions(), timeoutMs: 300 }));
    expect(err.message).toMatch(/no complete answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('stops reading a 100 MB body at the size limit (declared and undeclared length)', async () => {
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const stream = (declare: boolean): Handler => (_req, res) => {
      sent = 0;
      res.writeHead(200, declare ? { 'content-length': String(100 * 1024 * 1024) } : {});
      const pump = (): void => {
        while (sent < 100 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => undefined);
      pump();
    };
    routes.set('/.well-known/schemapin.json', stream(true));
    expect((await failure(fetchDiscovery(domain(), testOptions()))).message).toMatch(/over the limit/);
    routes.set('/.well-known/schemapin.json', stream(false));
    expect((await failure(fetchDiscovery(domain(), testOptions()))).message).toMatch(/over the limit of 262144 bytes/);
    expect(sent).toBeLessThan(100 * 1024 * 1024);
  });

  it('a discovery body that is not JSON, or has duplicate keys, is discovery_invalid', async () => {
    routes.set('/.well-known/schemapin.json', (_req, res) => void res.writeHead(200).end('{"public_key_pem":"a","public_key_pem":"b"}'));
    expect((await failure(fetchDiscovery(domain(), testOptions()))).errorCode).toBe('discovery_invalid');
  });

  it('refuses plain http unless the test allowance is given', async () => {
    routes.set('/.well-known/schemapin.json', json(wellKnown));
    expect((await failure(fetchDiscovery(`http://127.0.0.1:${plainPort}`, { allowPrivateAddresses: true }))).message).toMatch(/http: is refused/);
    const { discovery } = await fetchDiscovery(`http://127.0.0.1:${plainPort}`, { allowPrivateAddresses: true, allowInsecureHttp: true });
    expect(discovery.public_key_pem).toBe(wellKnown.public_key_pem);
  });
});

/** A DNS server on 127.0.0.1 answering TXT queries from a table (RFC 1035 §4.1). */
function startDns(records: Record<string, string[][]>): Promise<{ socket: Socket; address: string }> {
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    let offset = 12;
    const labels: string[] = [];
    while (query[offset]! !== 0) {
      const len = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + len).toString('ascii'));
      offset += len + 1;
    }
    const question = query.subarray(12, offset + 5);
    const answers = records[labels.join('.').toLowerCase()];
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    header.writeUInt16BE(answers === undefined ? 0x8183 : 0x8180, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers?.length ?? 0, 6);
    const rrs = (answers ?? []).map((chunks) => {
      const rdata = Buffer.concat(chunks.map((c) => Buffer.concat([Buffer.from([Buffer.byteLength(c)]), Buffer.from(c)])));
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(16, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    socket.send(Buffer.concat([header, question, ...rrs]), peer.port, peer.address);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve({ socket, address: `127.0.0.1:${socket.address().port}` })));
}

describe('fetchDnsTxt (own DNS server on 127.0.0.1)', () => {
  it('reads the first v=schemapin1 record, chunks joined; no record is null', async () => {
    const { socket, address } = await startDns({
      '_schemapin.tools.example.com': [['unrelated=1'], ['v=schemapin1; kid=k1; fp=sha256:1807c8ba0d5e153ae2bccb9324596310', '6919f54a2bf645c361e36b8df25cdb1c']],
    });
    try {
      expect(await fetchDnsTxt('tools.example.com.', { servers: [address] })).toEqual({ version: 'schemapin1', kid: 'k1', fingerprint: 'sha256:1807c8ba0d5e153ae2bccb93245963106919f54a2bf645c361e36b8df25cdb1c' });
      expect(await fetchDnsTxt('other.example.com', { servers: [address] })).toBeNull();
    } finally {
      socket.close();
    }
  });
  it('a resolver that does not answer is discovery_fetch_failed (fail closed)', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    try {
      expect((await failure(fetchDnsTxt('tools.example.com', { servers: [`127.0.0.1:${silent.address().port}`], timeoutMs: 200 }))).errorCode).toBe('discovery_fetch_failed');
    } finally {
      silent.close();
    }
  });
});
