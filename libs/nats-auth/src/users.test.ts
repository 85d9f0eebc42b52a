import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { credsAuthenticator } from '@nats-io/nats-core';
import { decode } from '@nats-io/jwt';
import { ROOT_NAMESPACE, uniqueNamespace } from '@bulwark/bus';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { isBulwarkError } from '@bulwark/errors';
import { FileKeyStore, SoftwareKek, ensureRootKey, loadIdentity, writeRootPin } from '@bulwark/keystore';
import { ensureNatsAuthority, loadNatsAuthority } from './authority.js';
import { enrollPrincipal } from './enroll.js';
import { exportPrincipalKeys } from './export.js';
import { publicNkey } from './nkey.js';
import { OPERATOR_USER } from './permissions.js';
import { natsServerConfig, writeNatsServerConfig } from './server-config.js';
import { busCredentialsFor, ensureNatsUser, formatCreds, loadNatsCredentials, readCredsFile, writeCredsFile } from './users.js';

const provider = createNodeCryptoProvider();
const kek = new SoftwareKek(provider, new Uint8Array(32).fill(7), 'SYMBIONT_KEK');
const AGENT = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
let dir: string;
let store: FileKeyStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-nats-auth-'));
  store = await FileKeyStore.open({ dir: join(dir, 'keys'), wrapper: kek, provider });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    return isBulwarkError(e) ? e.code : `not a BulwarkError: ${String(e)}`;
  }
  return 'resolved';
}

describe('the NATS authority', () => {
  it('creates the operator and both accounts once, in the key store under the KEK, with explicit limits', async () => {
    const first = await ensureNatsAuthority(store, provider);
    expect(first.created).toEqual(['nats-operator', 'nats-account', 'nats-system-account']);
    const operator = decode<Record<string, unknown>>(first.authority.operator.jwt);
    expect(operator.nats['system_account']).toBe(first.authority.systemAccount.publicKey);
    const account = decode<{ limits: Record<string, unknown> }>(first.authority.account.jwt);
    expect(account.iss).toBe(first.authority.operator.publicKey);
    expect(account.nats.limits).toMatchObject({ conn: -1, subs: -1, data: -1, payload: -1, disk_storage: 10 * 1024 ** 3, streams: -1, consumer: -1 });
    // Seeds are wrapped key files; nothing in the directory holds them in the clear.
    for (const name of readdirSync(store.dir)) if (name.endsWith('.jwt')) expect(readFileSync(join(store.dir, name), 'utf8')).not.toMatch(/\bS[OAU][A-Z2-7]{50,}/);

    const again = await ensureNatsAuthority(store, provider);
    expect(again.created).toEqual([]);
    expect(again.issued).toEqual([]);
    expect(again.authority).toEqual(first.authority);
    expect(await loadNatsAuthority(store)).toEqual(first.authority);
  });
});

describe('NATS users', () => {
  beforeEach(async () => {
    await ensureNatsAuthority(store, provider);
  });

  it('issues a user JWT signed by the account with exactly its permissions, and keeps key and JWT on a re-run', async () => {
    const ns = uniqueNamespace();
    const first = await ensureNatsUser(store, provider, { kind: 'principal', id: AGENT }, ns);
    expect(first).toMatchObject({ created: true, issued: true });
    const claims = decode<{ pub: { allow: string[] }; sub: { allow: string[] }; resp?: unknown }>(first.credentials.jwt);
    expect(claims.iss).toBe((await loadNatsAuthority(store)).account.publicKey);
    expect(claims.sub).toBe(first.credentials.publicKey);
    expect(claims.nats.sub?.allow).toEqual([`_INBOX.agent_${AGENT.slice(6)}.>`]);
    expect(claims.nats.pub?.allow).toContain(`${ns.subjectPrefix}bulwark.policy.evaluate`);
    expect(claims.nats.resp).toBeUndefined();

    const again = await ensureNatsUser(store, provider, { kind: 'principal', id: AGENT }, ns);
    expect(again).toMatchObject({ created: false, issued: false });
    expect(again.credentials.jwt).toBe(first.credentials.jwt);
    expect(again.credentials.seed).toEqual(first.credentials.seed);
  });

  it('re-issues the JWT, never the key, when the permissions change', async () => {
    const first = await ensureNatsUser(store, provider, { kind: 'principal', id: 'analyst.j_doe' }, ROOT_NAMESPACE);
    const admin = await ensureNatsUser(store, provider, { kind: 'principal', id: 'analyst.j_doe', admin: true }, ROOT_NAMESPACE);
    expect(admin).toMatchObject({ created: false, issued: true });
    expect(admin.credentials.publicKey).toBe(first.credentials.publicKey);
    expect(decode<{ pub: { allow: string[] } }>(admin.credentials.jwt).nats.pub?.allow).toContain('bulwark.policy.admin.register');
    expect((await loadNatsCredentials(store, { kind: 'principal', id: 'analyst.j_doe' }))?.jwt).toBe(admin.credentials.jwt);
  });

  it('loads nothing for a principal without a NATS user, and refuses a JWT that is not its own', async () => {
    expect(await loadNatsCredentials(store, { kind: 'principal', id: AGENT })).toBeUndefined();
    expect(await busCredentialsFor(store, AGENT)).toEqual({});
    await ensureNatsUser(store, provider, { kind: 'principal', id: AGENT }, ROOT_NAMESPACE);
    const other = await ensureNatsUser(store, provider, { kind: 'principal', id: 'svc.policy' }, ROOT_NAMESPACE);
    // svc.policy's (more powerful) JWT copied over the agent's: refused, not used.
    const agentJwt = join(store.dir, `${AGENT}.nats-user.v1.jwt`);
    writeFileSync(agentJwt, other.credentials.jwt, { mode: 0o600 });
    expect(await codeOf(loadNatsCredentials(store, { kind: 'principal', id: AGENT }))).toBe('E_NATS_JWT');
    // A JWT edited to grant more fails its signature.
    const [h, body, sig] = other.credentials.jwt.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { nats: { pub: { allow: string[] } } };
    claims.nats.pub.allow.push('>');
    writeFileSync(join(store.dir, 'svc.policy.nats-user.v1.jwt'), `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`, { mode: 0o600 });
    expect(await codeOf(loadNatsCredentials(store, { kind: 'principal', id: 'svc.policy' }))).toBe('E_NATS_JWT');
  });

  it('writes a standard .creds file with mode 0600 that NATS clients read', async () => {
    const { credentials } = await ensureNatsUser(store, provider, OPERATOR_USER, ROOT_NAMESPACE);
    const path = join(dir, 'operator.creds');
    await writeCredsFile(path, credentials);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const auth = credsAuthenticator(new Uint8Array(readFileSync(path)))('nonce');
    expect(auth).toMatchObject({ jwt: credentials.jwt, nkey: credentials.publicKey });
    expect(formatCreds(credentials)).toContain(new TextDecoder().decode(credentials.seed));
  });

  it('reads a .creds file back with its principal’s inbox prefix, and refuses a seed that is not the JWT’s', async () => {
    const agent = (await ensureNatsUser(store, provider, { kind: 'principal', id: AGENT }, ROOT_NAMESPACE)).credentials;
    const path = join(dir, 'agent.creds');
    await writeCredsFile(path, agent);
    expect(await readCredsFile(path)).toEqual(agent);
    const other = (await ensureNatsUser(store, provider, { kind: 'principal', id: 'svc.policy' }, ROOT_NAMESPACE)).credentials;
    writeFileSync(path, formatCreds({ ...agent, seed: other.seed }), { mode: 0o600 });
    expect(await codeOf(readCredsFile(path))).toBe('E_NATS_CREDS');
    writeFileSync(path, 'not creds', { mode: 0o600 });
    expect(await codeOf(readCredsFile(path))).toBe('E_NATS_CREDS');
  });
});

describe('enrolment', () => {
  it('gives a principal its identity, a root-signed directory entry and its NATS user; idempotent', async () => {
    await ensureRootKey(store, provider);
    await ensureNatsAuthority(store, provider);
    const first = await enrollPrincipal({ store, provider, id: AGENT, namespace: ROOT_NAMESPACE, validityDays: 90 });
    expect(first).toMatchObject({ createdKeys: ['ed25519', 'x25519'], natsUserCreated: true, natsJwtIssued: true, published: null });
    expect(first.entry).toMatchObject({ id: AGENT, keyVersion: 1, revoked: false });
    // The NATS user lapses with the directory entry.
    expect(decode(first.credentials.jwt).exp).toBe(Math.floor(first.entry.notAfter / 1000));
    const again = await enrollPrincipal({ store, provider, id: AGENT, namespace: ROOT_NAMESPACE, validityDays: 90 });
    expect(again).toMatchObject({ createdKeys: [], natsUserCreated: false, natsJwtIssued: false });
    expect(again.signed).toEqual(first.signed);
    expect(await codeOf(enrollPrincipal({ store, provider, id: AGENT, admin: true, namespace: ROOT_NAMESPACE, validityDays: 90 }))).toBe('E_NATS_PRINCIPAL');
    expect(await codeOf(enrollPrincipal({ store, provider, id: 'agent.bad', namespace: ROOT_NAMESPACE, validityDays: 90 }))).toBe('E_PRINCIPAL_ID');
  });
});

describe('a principal’s own key directory', () => {
  it('holds its identity and NATS user and nothing that could sign for others', async () => {
    const { root } = await ensureRootKey(store, provider);
    await writeRootPin(store.dir, root.keyPair.publicKey);
    await ensureNatsAuthority(store, provider);
    for (const id of ['svc.policy', AGENT]) await enrollPrincipal({ store, provider, id, namespace: ROOT_NAMESPACE, validityDays: 90 });
    const own = join(dir, 'policy-keys');
    expect(await exportPrincipalKeys(store, 'svc.policy', own)).toEqual([
      'svc.policy.ed25519.v1.json',
      'svc.policy.nats-user.v1.json',
      'svc.policy.nats-user.v1.jwt',
      'svc.policy.x25519.v1.json',
      'root.pub',
    ]);
    expect(statSync(own).mode & 0o777).toBe(0o700);
    const mine = await FileKeyStore.open({ dir: own, wrapper: kek, provider });
    expect((await mine.list()).map((k) => `${k.principal} ${k.kind}`)).toEqual(['svc.policy ed25519', 'svc.policy nats-user', 'svc.policy x25519']);
    expect((await loadIdentity(mine, 'svc.policy')).id).toBe('svc.policy');
    expect(await loadNatsCredentials(mine, { kind: 'principal', id: 'svc.policy' })).toEqual(await loadNatsCredentials(store, { kind: 'principal', id: 'svc.policy' }));
    // No account key there: it cannot issue a user, its own or anyone's.
    expect(await codeOf(ensureNatsUser(mine, provider, { kind: 'principal', id: AGENT }, ROOT_NAMESPACE))).toBe('E_NATS_CREDS');
    expect(await mine.list(AGENT)).toEqual([]);
    // Never into the key directory itself, nor beside another principal's keys.
    expect(await codeOf(exportPrincipalKeys(store, 'svc.policy', store.dir))).toBe('E_NATS_EXPORT');
    expect(await codeOf(exportPrincipalKeys(store, AGENT, own))).toBe('E_NATS_EXPORT');
    expect(await codeOf(exportPrincipalKeys(store, 'svc.schemapin', join(dir, 'none')))).toBe('E_NATS_EXPORT');
  });
});

describe('the nats-server configuration', () => {
  it('runs operator mode: operator JWT, system account, MEMORY resolver preloaded with both accounts, JetStream', async () => {
    const { authority } = await ensureNatsAuthority(store, provider);
    const path = await writeNatsServerConfig(join(dir, 'nats'), authority, { host: '127.0.0.1', port: 4333, storeDir: join(dir, 'js') });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain(`operator: "${authority.operator.jwt}"`);
    expect(text).toContain(`system_account: ${authority.systemAccount.publicKey}`);
    expect(text).toMatch(/^resolver: MEMORY$/m);
    expect(text).toContain(`  ${authority.account.publicKey}: "${authority.account.jwt}"`);
    expect(text).toContain(`  ${authority.systemAccount.publicKey}: "${authority.systemAccount.jwt}"`);
    expect(text).toContain(`store_dir: "${join(dir, 'js')}"`);
    expect(text).toMatch(/^port: 4333$/m);
    expect(text).not.toMatch(/no_auth_user|authorization/);
    expect(publicNkey('nats-account', new Uint8Array(32)).startsWith('A')).toBe(true);
  });

  it('refuses values that would inject directives', async () => {
    const { authority } = await ensureNatsAuthority(store, provider);
    expect(() => natsServerConfig(authority, { host: '127.0.0.1\nno_auth_user: x', storeDir: dir })).toThrow(/listen host/);
    expect(() => natsServerConfig(authority, { storeDir: `${dir}"\nno_auth_user: x` })).toThrow(/store directory/);
    expect(() => natsServerConfig(authority, { port: 70000, storeDir: dir })).toThrow(/not a port/);
    expect(() => natsServerConfig({ ...authority, account: { ...authority.account, jwt: 'x"\ny' } }, { storeDir: dir })).toThrow(/malformed/);
  });
});
