/**
 * Signed notes (c2sp.org/signed-note): UTF-8 text, a blank line, then signature lines
 *
 *   — <key name> <base64(4-byte key ID || signature)>\n      (the dash is U+2014)
 *
 * The signed message is the text up to and including its final newline, not the blank
 * line; for a cosignature/v1 key (type 0x04, c2sp.org/tlog-cosignature) it is
 * `cosignature/v1\ntime <T>\n` followed by the text, and the signature bytes are
 * T (u64 big-endian, POSIX seconds) followed by the Ed25519 signature. Verification follows the spec: a line counts only when both name and key ID
 * match a known key; lines from unknown keys are ignored; a known key's line that fails
 * rejects the whole note; a note with no verified signature is rejected.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { fromBase64, toBase64 } from '@bulwark/crypto';
import { LedgerError } from '../errors.js';
import { COSIGNATURE_V1_TYPE, ED25519_SIGNATURE_TYPE, isValidKeyName, keyIdHex, type SignerKey, type VerifierKey } from './keys.js';

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The bytes after the key ID (64 for Ed25519, 8 + 64 for a cosignature/v1). */
  readonly signature: Uint8Array;
  /** For a cosignature/v1: when the cosigner signed, POSIX seconds (set once the line is verified or made). */
  readonly timestamp?: number;
  /** The whole line, without its newline. */
  readonly line: string;
}

export interface Note {
  /** The signed message: text ending in a newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

export interface OpenedNote extends Note {
  /** Signatures that verified with a known key, in note order. */
  readonly verified: readonly NoteSignature[];
  /** Signatures from keys the caller does not know (ignored). */
  readonly unverified: readonly NoteSignature[];
}

const DASH = '\u2014';
/** The spec asks verifiers to accept at least 16 signatures and lets them cap the count. */
export const MAX_NOTE_SIGNATURES = 100;
const MAX_NOTE_BYTES = 1 << 20;
const utf8 = new TextEncoder();

function malformed(why: string, context: Record<string, unknown> = {}): LedgerError {
  return new LedgerError('E_NOTE', `signed note: ${why}`, context);
}

/** Text may hold no control characters but newline (signed-note, "Format"), and ends in one. */
function checkText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) throw malformed('text must be non-empty and end with a newline');
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/u.test(text)) throw malformed('text contains a control character other than newline');
  if (/\p{Cs}/u.test(text)) throw malformed('text contains a lone surrogate (not UTF-8)');
}

export function parseNote(note: string): Note {
  if (note.length > MAX_NOTE_BYTES) throw malformed(`longer than ${MAX_NOTE_BYTES} characters`);
  checkText(note);
  // The split is at the last blank line: the text may itself contain blank lines.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw malformed('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length === 0 || lines[0] === '') throw malformed('no signature lines');
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures = lines.map((line, i) => parseSignatureLine(line, i + 1));
  return { text, signatures };
}

function parseSignatureLine(line: string, number: number): NoteSignature {
  const parts = line.split(' ');
  if (parts.length !== 3 || parts[0] !== DASH) throw malformed(`signature line ${number} is not "— <name> <base64>"`, { line: number });
  const name = parts[1]!;
  if (!isValidKeyName(name)) throw malformed(`signature line ${number} has an invalid key name`, { line: number });
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(parts[2]!, 'signature');
  } catch (cause) {
    throw new LedgerError('E_NOTE', `signed note: signature line ${number} is not canonical base64`, { line: number }, { cause });
  }
  if (bytes.length < 5) throw malformed(`signature line ${number} is too short for a key ID and a signature`, { line: number });
  const keyId = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  return { name, keyId, signature: bytes.slice(4), line };
}

export function signatureLine(name: string, keyId: number, signature: Uint8Array): string {
  const bytes = new Uint8Array(4 + signature.length);
  new DataView(bytes.buffer).setUint32(0, keyId, false);
  bytes.set(signature, 4);
  return `${DASH} ${name} ${toBase64(bytes)}`;
}

export function formatNote(note: Note): string {
  if (note.signatures.length === 0) throw malformed('a note needs at least one signature');
  return `${note.text}\n${note.signatures.map((s) => `${s.line}\n`).join('')}`;
}

function cosignedMessage(timestamp: number, text: string): Uint8Array {
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

/**
 * One signature line over `text` by `signer`. A cosignature/v1 key signs with
 * `timestamp` (POSIX seconds, default now).
 */
export function signText(crypto: Pick<CryptoProvider, 'ed25519'>, text: string, signer: SignerKey, options: { timestamp?: number } = {}): NoteSignature {
  checkText(text);
  switch (signer.type) {
    case ED25519_SIGNATURE_TYPE: {
      const signature = crypto.ed25519.sign(signer.secretKey, utf8.encode(text));
      return { name: signer.name, keyId: signer.keyId, signature, line: signatureLine(signer.name, signer.keyId, signature) };
    }
    case COSIGNATURE_V1_TYPE: {
      const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw malformed(`cosignature timestamp ${timestamp} is not a non-negative integer`);
      const bytes = new Uint8Array(8 + 64);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(timestamp), false);
      bytes.set(crypto.ed25519.sign(signer.secretKey, cosignedMessage(timestamp, text)), 8);
      return { name: signer.name, keyId: signer.keyId, signature: bytes, timestamp, line: signatureLine(signer.name, signer.keyId, bytes) };
    }
    default: {
      const unreachable: never = signer.type;
      throw malformed(`unknown signature type ${String(unreachable)}`);
    }
  }
}

/** Checks one line against its key; returns the line (with its timestamp for a cosignature) or undefined. */
function verifyLine(crypto: Pick<CryptoProvider, 'ed25519'>, key: VerifierKey, text: string, signature: NoteSignature): NoteSignature | undefined {
  switch (key.type) {
    case ED25519_SIGNATURE_TYPE:
      return signature.signature.length === 64 && crypto.ed25519.verify(key.publicKey, utf8.encode(text), signature.signature) ? signature : undefined;
    case COSIGNATURE_V1_TYPE: {
      if (signature.signature.length !== 8 + 64) return undefined;
      const raw = new DataView(signature.signature.buffer, signature.signature.byteOffset, 8).getBigUint64(0, false);
      // The spec caps timestamps at 2^63 - 1; JS numbers are exact to 2^53, far beyond any real clock.
      if (raw > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      const timestamp = Number(raw);
      const ok = crypto.ed25519.verify(key.publicKey, cosignedMessage(timestamp, text), signature.signature.subarray(8));
      return ok ? { ...signature, timestamp } : undefined;
    }
    default: {
      const unreachable: never = key.type;
      throw malformed(`unknown signature type ${String(unreachable)}`);
    }
  }
}

/** A note of `text` signed by every signer, in order. */
export function signNote(crypto: Pick<CryptoProvider, 'ed25519'>, text: string, signers: readonly SignerKey[]): string {
  return formatNote({ text, signatures: signers.map((signer) => signText(crypto, text, signer)) });
}

/**
 * Adds signature lines (a witness's cosignature, say) to a note; a line from a key that
 * already signed replaces nothing and is refused, so a note never carries two opinions of one key.
 */
export function addSignatures(note: string, added: readonly NoteSignature[]): string {
  const parsed = parseNote(note);
  const seen = new Set(parsed.signatures.map((s) => `${s.name}+${keyIdHex(s.keyId)}`));
  for (const signature of added) {
    const key = `${signature.name}+${keyIdHex(signature.keyId)}`;
    if (seen.has(key)) throw malformed(`key ${key} has already signed this note`);
    seen.add(key);
  }
  return formatNote({ text: parsed.text, signatures: [...parsed.signatures, ...added] });
}

/**
 * Parses and verifies a note against known keys. Throws E_NOTE when malformed,
 * E_NOTE_SIGNATURE when a known key's signature fails or no known key signed.
 */
export function openNote(crypto: Pick<CryptoProvider, 'ed25519'>, note: string, known: readonly VerifierKey[]): OpenedNote {
  const parsed = parseNote(note);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const signature of parsed.signatures) {
    const id = `${signature.name}+${keyIdHex(signature.keyId)}`;
    if (seen.has(id)) throw malformed(`key ${id} signed more than once`);
    seen.add(id);
    const key = known.find((k) => k.name === signature.name && k.keyId === signature.keyId);
    if (key === undefined) {
      unverified.push(signature);
      continue;
    }
    const checked = verifyLine(crypto, key, parsed.text, signature);
    if (checked === undefined) throw new LedgerError('E_NOTE_SIGNATURE', `signed note: signature by ${id} does not verify`, { key: id });
    verified.push(checked);
  }
  if (verified.length === 0) {
    const names = parsed.signatures.map((s) => s.name).join(', ');
    throw new LedgerError('E_NOTE_SIGNATURE', `signed note: no signature from a known key (signed by ${names})`, { signers: names });
  }
  return { ...parsed, verified, unverified };
}
