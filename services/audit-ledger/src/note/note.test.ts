import { describe, expect, it } from 'vitest';
import { createCryptoProvider, fromHex, toBase64, toHex } from '@bulwark/crypto';
import { readVectorJson, readVectorText } from '@bulwark/testkit';
import { isLedgerError } from '../errors.js';
import { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint } from './checkpoint.js';
import { COSIGNATURE_V1_TYPE, computeKeyId, formatSignerKey, formatVerifierKey, keyIdHex, parseSignerKey, parseVerifierKey, publicPart, signerKey, verifierKey, type VerifierKey } from './keys.js';
import { addSignatures, openNote, parseNote, signNote, signText } from './signed-note.js';

const crypto = createCryptoProvider('node');

interface VerifierVector { vkey: string; key_name: string; key_id_hex: string; signature_type: number; public_key_hex: string; key_id_input_hex: string }
interface NoteCase {
  name: string;
  file: string;
  verifier?: VerifierVector | null;
  verifiers?: VerifierVector[];
  signer_private_keys_test_only?: Record<string, string>;
  note: string;
  expect_valid: boolean | null;
  expected: Record<string, unknown> & { text?: string; origin?: string; tree_size?: number; root_hash_hex?: string; root_hash_base64?: string; verified_signatures?: string[] };
}
const { cases } = readVectorJson<{ cases: NoteCase[] }>('c2sp-checkpoint', 'checkpoint-vectors.json');
const byName = (name: string): NoteCase => cases.find((c) => c.name === name)!;
const verifiersOf = (c: NoteCase): VerifierVector[] => (c.verifiers ?? (c.verifier ? [c.verifier] : []));

function errorCode(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (isLedgerError(err)) return err.code;
    throw err;
  }
  return 'none';
}

describe('verifier keys (checkpoint-vectors.json)', () => {
  const all = cases.flatMap(verifiersOf);

  it('has the four vector notes and three keys', () => {
    expect(cases.map((c) => c.name)).toEqual(['sumdb-checkpoint', 'c2sp-signed-note-example', 'go-note-two-signers', 'c2sp-tlog-checkpoint-spec-example']);
    expect(all).toHaveLength(4);
  });

  it.each(all.map((v) => [v.key_name, v]))('parses %s, recomputes its key ID and formats it back', (_name, v) => {
    const key = parseVerifierKey(crypto, v.vkey);
    expect(key.name).toBe(v.key_name);
    expect(keyIdHex(key.keyId)).toBe(v.key_id_hex);
    expect(toHex(key.publicKey)).toBe(v.public_key_hex);
    expect(toHex(crypto.sha256(fromHex(v.key_id_input_hex))).slice(0, 8)).toBe(v.key_id_hex);
    expect(computeKeyId(crypto, v.key_name, fromHex(v.public_key_hex))).toBe(key.keyId);
    expect(formatVerifierKey(key)).toBe(v.vkey);
  });

  it('rejects a verifier key whose ID does not match, or that is malformed', () => {
    const good = byName('c2sp-signed-note-example').verifier!.vkey;
    expect(() => parseVerifierKey(crypto, good.replace('530d903a', '530d903b'))).toThrow('does not match the key');
    expect(() => parseVerifierKey(crypto, good.replace('example.com/foo', 'example.com/bar'))).toThrow('does not match the key');
    expect(errorCode(() => parseVerifierKey(crypto, 'example.com/foo+530d903a'))).toBe('E_KEY');
    expect(errorCode(() => parseVerifierKey(crypto, good.replace('+Aek', '+Bek')))).toBe('E_KEY');
    expect(errorCode(() => parseVerifierKey(crypto, good.replace('530d903a', '530D903A')))).toBe('E_KEY');
  });

  it('parses the PeterNeumann signer key and derives the published verifier key', () => {
    const c = byName('go-note-two-signers');
    const signer = parseSignerKey(crypto, c.signer_private_keys_test_only!['PeterNeumann']!);
    expect(formatVerifierKey(signer)).toBe(c.verifiers![0]!.vkey);
    expect(formatSignerKey(signer)).toBe(c.signer_private_keys_test_only!['PeterNeumann']);
  });
});

describe('signed notes (checkpoint-vectors.json)', () => {
  for (const c of cases.filter((c) => c.expect_valid === true)) {
    it(`opens ${c.name} with its key(s)`, () => {
      const keys = verifiersOf(c).map((v) => parseVerifierKey(crypto, v.vkey));
      const opened = openNote(crypto, c.note, keys);
      expect(opened.text).toBe(c.expected.text);
      expect(opened.unverified).toEqual([]);
      expect(opened.verified.map((s) => s.name)).toEqual(c.expected.verified_signatures ?? keys.map((k) => k.name));
      // The .txt file is the same note byte for byte.
      expect(readVectorText('c2sp-checkpoint', c.file)).toBe(c.note);
    });
  }

  it('verifies each of two signers alone and ignores the other as unknown', () => {
    const c = byName('go-note-two-signers');
    const [peter, enoch] = c.verifiers!.map((v) => parseVerifierKey(crypto, v.vkey)) as [VerifierKey, VerifierKey];
    const onlyPeter = openNote(crypto, c.note, [peter]);
    expect(onlyPeter.verified.map((s) => s.name)).toEqual(['PeterNeumann']);
    expect(onlyPeter.unverified.map((s) => s.name)).toEqual(['EnochRoot']);
    const onlyEnoch = openNote(crypto, c.note, [enoch]);
    expect(onlyEnoch.verified.map((s) => s.name)).toEqual(['EnochRoot']);
    expect(onlyEnoch.unverified.map((s) => s.name)).toEqual(['PeterNeumann']);
    expect(openNote(crypto, c.note, [peter, enoch]).verified.map((s) => s.name)).toEqual(['PeterNeumann', 'EnochRoot']);
  });

  it('rejects a note with no signature from a known key', () => {
    const unrelated = verifierKey(crypto, 'Unrelated', crypto.ed25519.generateKeyPair().publicKey);
    expect(() => openNote(crypto, byName('go-note-two-signers').note, [unrelated])).toThrow('no signature from a known key');
    // Same name, other key: the key ID differs, so the line is unknown rather than failing.
    const impostor = verifierKey(crypto, 'PeterNeumann', crypto.ed25519.generateKeyPair().publicKey);
    expect(errorCode(() => openNote(crypto, byName('go-note-two-signers').note, [impostor]))).toBe('E_NOTE_SIGNATURE');
  });

  it('reproduces the PeterNeumann signature line byte for byte from its private key', () => {
    const c = byName('go-note-two-signers');
    const signer = parseSignerKey(crypto, c.signer_private_keys_test_only!['PeterNeumann']!);
    const line = signText(crypto, c.expected.text!, signer).line;
    expect(c.note.split('\n')).toContain(line);
    expect(signNote(crypto, c.expected.text!, [signer])).toBe(`${c.expected.text}\n${line}\n`);
    expect(signNote(createCryptoProvider('noble'), c.expected.text!, [signer])).toBe(`${c.expected.text}\n${line}\n`);
  });

  it('rejects the whole note when a known key signature fails', () => {
    const c = byName('go-note-two-signers');
    const keys = c.verifiers!.map((v) => parseVerifierKey(crypto, v.vkey));
    const tamperedText = c.note.replace('cryptography', 'cryptographY');
    expect(() => openNote(crypto, tamperedText, keys)).toThrow('signature by PeterNeumann+c74f20a3 does not verify');
    // Flip one bit of Enoch's signature: Peter's still verifies, but the note is rejected.
    const lines = c.note.split('\n');
    const enochLine = lines[4]!;
    const flipped = enochLine.slice(0, -6) + (enochLine.at(-6) === 'A' ? 'B' : 'A') + enochLine.slice(-5);
    expect(() => openNote(crypto, c.note.replace(enochLine, flipped), keys)).toThrow('EnochRoot+af0cfe78 does not verify');
  });

  it.each([
    ['no blank line', 'text\n\u2014 a AAAAAAA=\n'],
    ['no signatures', 'text\n\n'],
    ['hyphen instead of em dash', 'text\n\n- a AAAAAAAAAA==\n'],
    ['missing final newline', 'text\n\n\u2014 a AAAAAAAAAA=='],
    ['a tab in the text', 'te\txt\n\n\u2014 a AAAAAAAAAA==\n'],
    ['a carriage return', 'text\r\n\n\u2014 a AAAAAAAAAA==\n'],
    ['a short signature', 'text\n\n\u2014 a AAAA\n'],
    ['a name with a +', 'text\n\n\u2014 a+b AAAAAAAAAA==\n'],
    ['non-canonical base64', 'text\n\n\u2014 a AAAAAAAAAB==\n'],
    ['an extra space', 'text\n\n\u2014  a AAAAAAAAAA==\n'],
  ])('refuses a malformed note: %s', (_name, note) => {
    expect(errorCode(() => parseNote(note))).toBe('E_NOTE');
  });

  it('splits at the last blank line when the text has blank lines of its own', () => {
    const signer = signerKey(crypto, 'example.com/log', crypto.randomBytes(32));
    const note = signNote(crypto, 'one\n\ntwo\n', [signer]);
    expect(openNote(crypto, note, [signer]).text).toBe('one\n\ntwo\n');
  });

  it('refuses a key signing twice', () => {
    const signer = signerKey(crypto, 'example.com/log', crypto.randomBytes(32));
    const note = signNote(crypto, 'text\n', [signer]);
    expect(() => addSignatures(note, [signText(crypto, 'text\n', signer)])).toThrow('has already signed');
    const doubled = note + note.split('\n\n')[1]!;
    expect(() => openNote(crypto, doubled, [signer])).toThrow('signed more than once');
  });
});

describe('checkpoints (checkpoint-vectors.json)', () => {
  it('parses the sumdb checkpoint and checks its origin', () => {
    const c = byName('sumdb-checkpoint');
    const logKey = parseVerifierKey(crypto, c.verifier!.vkey);
    const { checkpoint } = openCheckpoint(crypto, c.note, { origin: 'go.sum database tree', logKey });
    expect(checkpoint.origin).toBe(c.expected.origin);
    expect(checkpoint.size).toBe(c.expected.tree_size);
    expect(toHex(checkpoint.rootHash)).toBe(c.expected.root_hash_hex);
    expect(checkpoint.extensions).toEqual([]);
    expect(formatCheckpoint(checkpoint)).toBe(c.expected.text);
    expect(() => openCheckpoint(crypto, c.note, { origin: 'Go rocks but I might have the wrong ID', logKey })).toThrow('is not the expected');
  });

  it('parses the spec example without verifying it (no key is published)', () => {
    const c = byName('c2sp-tlog-checkpoint-spec-example');
    const note = parseNote(c.note);
    const checkpoint = parseCheckpoint(note.text);
    expect(checkpoint.origin).toBe(c.expected.origin);
    expect(checkpoint.size).toBe(c.expected.tree_size);
    expect(toBase64(checkpoint.rootHash)).toBe(c.expected.root_hash_base64);
    expect(keyIdHex(note.signatures[0]!.keyId)).toBe(c.expected['signature_key_id_hex']);
    const sumdbKey = parseVerifierKey(crypto, byName('sumdb-checkpoint').verifier!.vkey);
    // Its key ID is sum.golang.org's but the name is not, so the line is unknown: rejected for want of a known signature.
    expect(() => openCheckpoint(crypto, c.note, { origin: checkpoint.origin, logKey: sumdbKey })).toThrow('no signature from a known key');
  });

  it('refuses the signed-note example as a checkpoint (one line of text)', () => {
    const c = byName('c2sp-signed-note-example');
    expect(() => openCheckpoint(crypto, c.note, { origin: 'example.com/foo', logKey: parseVerifierKey(crypto, c.verifier!.vkey) })).toThrow('needs at least origin, size and root hash');
  });

  it('signs and opens its own checkpoints with extension lines and witnesses', () => {
    const log = signerKey(crypto, 'bulwark.test/ledger', crypto.randomBytes(32));
    const witness = signerKey(crypto, 'bulwark.test/witness', crypto.randomBytes(32));
    const checkpoint = { origin: 'bulwark.test/ledger', size: 42, rootHash: crypto.sha256(Uint8Array.of(42)), extensions: ['ext one'] };
    const note = signCheckpoint(crypto, checkpoint, [log]);
    const opened = openCheckpoint(crypto, note, { origin: checkpoint.origin, logKey: log, witnesses: [witness] });
    expect(opened.checkpoint).toEqual(checkpoint);
    expect(opened.witnesses).toEqual([]);
    expect(() => openCheckpoint(crypto, note, { origin: checkpoint.origin, logKey: log, witnesses: [witness], minWitnesses: 1 })).toThrow('0 of the 1 witness cosignatures');
    // Signed by the witness alone: the log's signature is required.
    const witnessOnly = signCheckpoint(crypto, checkpoint, [witness]);
    expect(() => openCheckpoint(crypto, witnessOnly, { origin: checkpoint.origin, logKey: log, witnesses: [witness] })).toThrow('not signed by the log key');
  });

  it.each([
    ['two lines', 'origin\n5\n'],
    ['a leading zero', 'origin\n05\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n'],
    ['a negative size', 'origin\n-1\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n'],
    ['a short root', 'origin\n5\nAAAA\n'],
    ['an empty extension line', 'origin\n5\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\nx\n'],
    ['a size beyond 2^53', 'origin\n18446744073709551615\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n'],
  ])('refuses a checkpoint with %s', (_name, text) => {
    expect(errorCode(() => parseCheckpoint(text))).toBe('E_CHECKPOINT');
  });
});

describe('cosignature/v1 (c2sp.org/tlog-cosignature, Ed25519, type 0x04)', () => {
  const log = signerKey(crypto, 'bulwark.test/ledger', crypto.randomBytes(32));
  const witness = signerKey(crypto, 'bulwark.test/witness', crypto.randomBytes(32), COSIGNATURE_V1_TYPE);
  const text = formatCheckpoint({ origin: 'bulwark.test/ledger', size: 7, rootHash: crypto.sha256(Uint8Array.of(7)), extensions: [] });

  it('has its own key ID and vkey type byte for the same public key', () => {
    const plain = verifierKey(crypto, witness.name, witness.publicKey);
    expect(witness.keyId).not.toBe(plain.keyId);
    expect(toHex(crypto.sha256([new TextEncoder().encode(witness.name), Uint8Array.of(0x0a, 0x04), witness.publicKey])).slice(0, 8)).toBe(keyIdHex(witness.keyId));
    const vkey = formatVerifierKey(witness);
    expect(vkey.split('+')[2]!.startsWith('B')).toBe(true);
    expect(parseVerifierKey(crypto, vkey)).toEqual(publicPart(witness));
    expect(parseSignerKey(crypto, formatSignerKey(witness))).toEqual(witness);
  });

  it('signs "cosignature/v1", the time line and the note text, with the timestamp in front of the signature', () => {
    const line = signText(crypto, text, witness, { timestamp: 1679315147 });
    expect(line.timestamp).toBe(1679315147);
    const bytes = Buffer.from(line.line.split(' ')[2]!, 'base64');
    expect(bytes.readUInt32BE(0)).toBe(witness.keyId);
    expect(bytes.readBigUInt64BE(4)).toBe(1679315147n);
    const message = new TextEncoder().encode(`cosignature/v1\ntime 1679315147\n${text}`);
    expect(crypto.ed25519.verify(witness.publicKey, message, Uint8Array.from(bytes.subarray(12)))).toBe(true);
  });

  it('verifies beside the log signature and reports its timestamp', () => {
    const note = addSignatures(signNote(crypto, text, [log]), [signText(crypto, text, witness, { timestamp: 1700000000 })]);
    const opened = openNote(crypto, note, [publicPart(log), publicPart(witness)]);
    expect(opened.verified.map((s) => [s.name, s.timestamp])).toEqual([
      ['bulwark.test/ledger', undefined],
      ['bulwark.test/witness', 1700000000],
    ]);
  });

  it('rejects the note when the timestamp is changed after signing', () => {
    const cosig = signText(crypto, text, witness, { timestamp: 1700000000 });
    const bytes = Buffer.from(cosig.line.split(' ')[2]!, 'base64');
    bytes.writeBigUInt64BE(1700000001n, 4);
    const forged = `\u2014 ${witness.name} ${bytes.toString('base64')}`;
    const note = `${signNote(crypto, text, [log])}${forged}\n`;
    expect(() => openNote(crypto, note, [publicPart(log), publicPart(witness)])).toThrow('bulwark.test/witness+');
  });
});
