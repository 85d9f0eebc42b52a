import { createNodeCryptoProvider } from '@bulwark/crypto';
import { describe, expect, it } from 'vitest';
import { JoinTokenError } from '../errors.js';
import { issueJoinToken, parseJoinToken, verifyJoinToken } from './join-token.js';

const provider = createNodeCryptoProvider();
const issuer = provider.ed25519.generateKeyPair();
const other = provider.ed25519.generateKeyPair();
const AGENT = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
const NOW = 1_800_000_000_000;
const keyOf = (v: number) => (v === 1 ? issuer.publicKey : undefined);

function issue(over: Partial<Parameters<typeof issueJoinToken>[1]> = {}) {
  return issueJoinToken(provider, { principal: AGENT, now: NOW, ttlMs: 60_000, signer: { secretKey: issuer.secretKey, version: 1 }, ...over });
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof JoinTokenError ? e.code : `not a JoinTokenError: ${String(e)}`;
  }
  return undefined;
}

describe('join tokens', () => {
  it('admit the principal they name until they expire', () => {
    const { token, claims } = issue();
    expect(claims).toMatchObject({ sub: AGENT, kind: 'agent', admin: false, iat: NOW, exp: NOW + 60_000, kv: 1 });
    expect(verifyJoinToken(provider, token, keyOf, NOW + 59_999)).toEqual(claims);
    expect(code(() => verifyJoinToken(provider, token, keyOf, NOW + 60_000))).toBe('E_TOKEN_EXPIRED');
  });

  it('refuse a token signed by another key, or naming an issuer key version nobody has', () => {
    const { token } = issue({ signer: { secretKey: other.secretKey, version: 1 } });
    expect(code(() => verifyJoinToken(provider, token, keyOf, NOW))).toBe('E_TOKEN_FORGED');
    const { token: t2 } = issue({ signer: { secretKey: issuer.secretKey, version: 2 } });
    expect(code(() => verifyJoinToken(provider, t2, keyOf, NOW))).toBe('E_TOKEN_FORGED');
  });

  it('refuse claims edited after signing (another principal, a later expiry, admin)', () => {
    const { token } = issue({ principal: 'analyst.eve' });
    const [prefix, claims, sig] = token.split('.') as [string, string, string];
    const edited = (change: (c: Record<string, unknown>) => void): string => {
      const c = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as Record<string, unknown>;
      change(c);
      const sorted = Object.fromEntries(Object.keys(c).sort().map((k) => [k, c[k]]));
      return `${prefix}.${Buffer.from(JSON.stringify(sorted)).toString('base64url')}.${sig}`;
    };
    expect(code(() => verifyJoinToken(provider, edited((c) => (c['sub'] = 'analyst.mallory')), keyOf, NOW))).toBe('E_TOKEN_FORGED');
    expect(code(() => verifyJoinToken(provider, edited((c) => (c['exp'] = NOW + 1e9)), keyOf, NOW))).toBe('E_TOKEN_FORGED');
    expect(code(() => verifyJoinToken(provider, edited((c) => (c['admin'] = true)), keyOf, NOW))).toBe('E_TOKEN_FORGED');
  });

  it('refuse malformed text with one clear reason', () => {
    const { token } = issue();
    const [p, c, s] = token.split('.') as [string, string, string];
    for (const bad of [42, '', 'bwjt1', `bwjt2.${c}.${s}`, `${p}.${c}`, `${p}.${c}.${s}.x`, `${p}.${c}.AAAA`, `${p}.${c}!.${s}`, 'x'.repeat(5000)]) {
      expect(code(() => parseJoinToken(bad))).toBe('E_TOKEN_MALFORMED');
    }
    // Same claims, not in canonical form (spaces): one token, one form.
    const spaced = Buffer.from(JSON.stringify(JSON.parse(Buffer.from(c, 'base64url').toString()), null, 1)).toString('base64url');
    expect(code(() => parseJoinToken(`${p}.${spaced}.${s}`))).toBe('E_TOKEN_MALFORMED');
    const extra = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(c, 'base64url').toString()), x: 1 })).toString('base64url');
    expect(code(() => parseJoinToken(`${p}.${extra}.${s}`))).toBe('E_TOKEN_MALFORMED');
  });

  it('are issued only for agents and analysts, admin only for analysts, for at most 7 days', () => {
    expect(code(() => issue({ principal: 'svc.policy' }))).toBe('E_TOKEN_PRINCIPAL');
    expect(code(() => issue({ principal: 'Agent.X' }))).toBe('E_TOKEN_PRINCIPAL');
    expect(code(() => issue({ admin: true }))).toBe('E_TOKEN_PRINCIPAL');
    expect(issue({ principal: 'analyst.ann', admin: true }).claims.admin).toBe(true);
    expect(code(() => issue({ ttlMs: 0 }))).toBe('E_TOKEN_TTL');
    expect(code(() => issue({ ttlMs: 8 * 24 * 3600 * 1000 }))).toBe('E_TOKEN_TTL');
  });

  it('carry a fresh 128-bit id each', () => {
    expect(issue().claims.tid).not.toBe(issue().claims.tid);
  });
});
