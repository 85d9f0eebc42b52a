/**
 * Every case of ../shared/vectors/schemapin/ (read in place, never copied): canonical
 * strings and hashes, the 22 verifySchemaOffline cases (result fields, and the pin store
 * after, in the SDK's order and in ours), the repo fixtures (JS/Python double hash valid,
 * Go single hash rejected), trust bundles, DNS TXT, skill folders.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readVectorJson, readVectorText, vectorPath } from '@bulwark/testkit';
import { describe, expect, it } from 'vitest';
import {
  canonicalizeSchema,
  canonicalizeSkill,
  hashCanonical,
  keyFingerprint,
  KeyPinStore,
  parseJsonText,
  parseRevocationDocument,
  parseTxtRecord,
  SchemaPinError,
  txtRecordName,
  verifyDnsMatch,
  verifySchemaOffline,
  verifySkillOffline,
  verifyTrustBundle,
  bundleSigningInput,
  type JsonObject,
  type VerificationResult,
} from './index.js';

const dir = 'schemapin/generated';

interface CanonCase {
  id: string;
  input_json_text: string;
  canonical_js: string;
  sha256_hex: string;
  canonical_python: string;
  python_matches_js: boolean;
}
interface SigCase {
  id: string;
  schema: unknown;
  signature: string;
  domain: string;
  tool_id: string;
  discovery: JsonObject;
  revocation: JsonObject | null;
  canonicalization?: string;
  pin_store_before?: Record<string, string>;
  pin_store_after: Record<string, string>;
  expected: { valid: boolean; error_code: string | null; key_pinning_status: string | null; warnings: string[] };
}

const fields = (r: VerificationResult) => ({
  valid: r.valid,
  error_code: r.error_code ?? null,
  key_pinning_status: r.key_pinning?.status ?? null,
  warnings: r.warnings ?? [],
});

describe('schemapin-v1 canonicalization vectors', () => {
  const { cases } = readVectorJson<{ cases: CanonCase[] }>(dir, 'canonicalization.json');
  it('has the 14 cases', () => expect(cases).toHaveLength(14));
  for (const c of cases) {
    it(`${c.id}: matches the JS SDK byte for byte`, () => {
      const value = parseJsonText(c.input_json_text, c.id);
      const canonical = canonicalizeSchema(value);
      expect(canonical).toBe(c.canonical_js);
      expect(hashCanonical(canonical).toString('hex')).toBe(c.sha256_hex);
      if (!c.python_matches_js) expect(canonical).not.toBe(c.canonical_python);
    });
  }
  it('the repo sample schemas canonicalize as recorded', () => {
    const expected = readVectorJson<Record<string, { canonical: string; sha256_hex: string }>>('schemapin/repo-fixtures/sample_schemas_expected_canonical.json');
    const entries = Object.entries(expected).filter(([, v]) => typeof v === 'object' && v !== null && 'canonical' in v);
    expect(entries.length).toBe(3);
    for (const [name, v] of entries) {
      const file = name.endsWith('.json') ? name : `${name}.json`;
      const schema = parseJsonText(readVectorText('schemapin/repo-fixtures', file.startsWith('integration_demo') ? file : `integration_demo_sample_schemas_${file}`), name);
      expect(canonicalizeSchema(schema)).toBe(v.canonical);
      expect(hashCanonical(v.canonical).toString('hex')).toBe(v.sha256_hex);
    }
  });
});

describe('verifySchemaOffline vectors', () => {
  const { cases } = readVectorJson<{ cases: SigCase[] }>(dir, 'schema-signature-cases.json');
  it('has the 22 cases', () => expect(cases).toHaveLength(22));
  const run = (c: SigCase, pinning: 'reference' | 'after_verify') => {
    const store = KeyPinStore.fromObject(c.pin_store_before ?? {});
    const revocation = c.revocation === null ? null : parseRevocationDocument(c.revocation);
    const result = verifySchemaOffline(c.schema, c.signature, c.domain, c.tool_id, c.discovery, revocation, store, {
      pinning,
      ...(c.canonicalization === undefined ? {} : { canonicalization: c.canonicalization }),
    });
    return { result, after: store.toObject() };
  };
  for (const c of cases) {
    it(`${c.id}: the SDK's result and pin store (reference order)`, () => {
      const { result, after } = run(c, 'reference');
      expect(fields(result)).toEqual(c.expected);
      expect(after).toEqual(c.pin_store_after);
    });
    it(`${c.id}: same result, and no pin unless the signature verified (our order)`, () => {
      const { result, after } = run(c, 'after_verify');
      expect(fields(result)).toEqual(c.expected);
      expect(after).toEqual(c.expected.valid ? c.pin_store_after : (c.pin_store_before ?? {}));
    });
  }
});

describe('repo fixtures', () => {
  const fixture = (name: string) => readVectorJson<JsonObject>('schemapin/repo-fixtures', name);
  const verify = (signed: string, wellKnown: string) => {
    const s = fixture(signed);
    return verifySchemaOffline(s.schema, s.signature, 'example.com', 'demo', fixture(wellKnown), null, new KeyPinStore());
  };
  it('the JS demo signature is valid (double hash), fingerprint as recorded', () => {
    expect(verify('javascript_demo_schema_signed.json', 'javascript_demo_well_known.json')).toMatchObject({ valid: true, key_fingerprint: 'sha256:1e5cb07433ed740a40122dfd3183c970ad07ca5eefc2383ef722c39cf950d0ed' });
  });
  it('the Python demo signature (a 69-byte DER with a 31-byte r) is valid', () => {
    expect(verify('python_examples_demo_schema_signed.json', 'python_examples_demo_well_known.json').valid).toBe(true);
  });
  it('the Go demo signatures (single hash) are rejected as the JS SDK rejects them', () => {
    expect(verify('go_demo_signed.json', 'go_schemapin.json')).toMatchObject({ valid: false, error_code: 'signature_invalid' });
    expect(verify('go_examples_client_demo_schema_signed.json', 'go_examples_client_demo_well_known.json')).toMatchObject({ valid: false, error_code: 'signature_invalid' });
  });
  it('the cross-language signed bundle verifies', () => {
    expect(verifyTrustBundle(fixture('tests_cross-language_signed_bundle.json'), new KeyPinStore())).toBe(true);
  });
  it('the schemapin.org skill folder hashes to its recorded skill_hash', () => {
    const sig = fixture('skill-schemapin-repo/.schemapin.sig');
    const { rootHash, manifest } = canonicalizeSkill(vectorPath('schemapin/repo-fixtures/skill-schemapin-repo'));
    expect(manifest).toEqual(sig.file_manifest);
    expect(`sha256:${rootHash.toString('hex')}`).toBe(sig.skill_hash);
  });
});

describe('trust bundle vectors', () => {
  const expected = readVectorJson<Record<string, unknown>>(dir, 'bundle/expected.json');
  for (const name of ['trust-bundle-unsigned.json', 'trust-bundle-signed.json', 'trust-bundle-signed-tampered.json', 'trust-bundle-signed-expired.json']) {
    it(`${name}`, () => {
      const want = expected[name] as { valid: boolean; error_code: string | null };
      const bundle = readVectorJson<JsonObject>(dir, 'bundle', name);
      let got: { valid: boolean; error_code: string | null };
      try {
        got = { valid: verifyTrustBundle(bundle, new KeyPinStore()), error_code: null };
      } catch (err) {
        if (!(err instanceof SchemaPinError)) throw err;
        got = { valid: false, error_code: err.errorCode };
      }
      expect(got).toEqual(want);
    });
  }
  it('the signing input of the signed bundle is the recorded canonical text', () => {
    expect(bundleSigningInput(readVectorJson<JsonObject>(dir, 'bundle/trust-bundle-signed.json'))).toBe(expected.signing_input_canonical_of_signed);
  });
});

describe('DNS TXT vectors', () => {
  const v = readVectorJson<{
    record_name_for: Record<string, string>;
    well_known: string;
    cases: { txt: string; parsed?: unknown; match_against_well_known?: string; parse_error?: string }[];
  }>(dir, 'dns-txt-cases.json');
  const wellKnown = readVectorJson<JsonObject>(dir, v.well_known);
  it('record names', () => {
    for (const [domain, name] of Object.entries(v.record_name_for)) expect(txtRecordName(domain)).toBe(name);
  });
  it('has the 7 cases', () => expect(v.cases).toHaveLength(7));
  for (const c of v.cases) {
    it(`parses ${JSON.stringify(c.txt)}`, () => {
      if (c.parse_error !== undefined) {
        expect(() => parseTxtRecord(c.txt)).toThrow(c.parse_error);
        return;
      }
      const parsed = parseTxtRecord(c.txt);
      expect(parsed).toEqual(c.parsed);
      if (c.match_against_well_known === 'match') expect(() => verifyDnsMatch(wellKnown, parsed)).not.toThrow();
      else expect(() => verifyDnsMatch(wellKnown, parsed)).toThrow(c.match_against_well_known!.replace(/^error: /, ''));
    });
  }
});

describe('skill folder vectors', () => {
  const expected = readVectorJson<Record<string, { root_hash_hex?: string; manifest?: Record<string, string>; result: Record<string, unknown> }>>(dir, 'skill/expected.json');
  const discovery = readVectorJson<JsonObject>(dir, 'well-known/tools.example.com.schemapin.json');
  const revocation = parseRevocationDocument(readVectorJson(dir, 'well-known/tools.example.com.schemapin-revocations.json'));
  it('demo-skill: root hash, manifest, and the SDK result', () => {
    const folder = vectorPath(dir, 'skill/demo-skill');
    const { rootHash, manifest } = canonicalizeSkill(folder);
    expect(rootHash.toString('hex')).toBe(expected['demo-skill']!.root_hash_hex);
    expect(manifest).toEqual(expected['demo-skill']!.manifest);
    const { key_fingerprint: _fp, ...result } = verifySkillOffline(folder, discovery, { revocation, pinStore: new KeyPinStore() });
    expect(result).toEqual(expected['demo-skill']!.result);
  });
  it('demo-skill-tampered: signature_invalid, nothing pinned', () => {
    const store = new KeyPinStore();
    const result = verifySkillOffline(vectorPath(dir, 'skill/demo-skill-tampered'), discovery, { revocation, pinStore: store });
    expect(result).toEqual(expected['demo-skill-tampered']!.result);
    expect(store.size).toBe(0);
  });
  it('a copy of demo-skill with one byte added to a file fails', () => {
    const copy = mkdtempSync(join(tmpdir(), 'schemapin-skill-'));
    try {
      cpSync(vectorPath(dir, 'skill/demo-skill'), copy, { recursive: true });
      expect(verifySkillOffline(copy, discovery).valid).toBe(true);
      cpSync(vectorPath(dir, 'skill/demo-skill-tampered/examples/usage.md'), join(copy, 'examples/usage.md'));
      expect(verifySkillOffline(copy, discovery).error_code).toBe('signature_invalid');
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('keys', () => {
  it('fingerprints match fingerprints.json', () => {
    const fps = readVectorJson<Record<string, string>>(dir, 'keys/fingerprints.json');
    for (const [name, fp] of Object.entries(fps)) expect(keyFingerprint(readVectorText(dir, 'keys', `${name}.public.pem`))).toBe(fp);
  });
});
