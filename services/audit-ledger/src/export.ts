/**
 * JSONL export of the ledger, and an offline verifier for it that needs nothing but the
 * file and the ledger's verifier key (an auditor's tool: no database, no bus).
 *
 * One JSON object per line:
 *   {"type":"header","format":"bulwark-audit-export/v2","origin":…,"log_key":<vkey>,"from_seq":F,"size":N,"start_edge":[hex…]}
 *   {"type":"event","seq":…,"event_id":…,"timestamp":…,"producer":…,"agent_id":…,"event_type":…,"details":{…},
 *    "details_jcs":"…","previous_hash":hex,"event_hash":hex,"signature":hex}   (seq F … N−1, in order)
 *   {"type":"checkpoint","note":<C2SP signed note of size N>}
 *
 * `start_edge` is the compact range of the tree at F, so an export that starts past 0
 * still rebuilds the root of size N and checks it against the signed checkpoint. The
 * verifier trusts nothing in the file: the header's key must be the one it was given.
 *
 * `details_jcs` is the exact RFC 8785 text that was hashed: `details` is that text parsed and
 * re-serialised by JSON.stringify, which moves integer-like keys first, so an outside verifier
 * hashes `details_jcs`. The verifier hashes it too and requires `details` to be its parse.
 *
 * v2 (event hash v2): every event carries its producer, hashed, and the verifier also
 * checks that the producer may produce the event (`checkProducer`). A v1 export (hash v1,
 * no producer) is refused with a message that says so.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { fromHex, toHex } from '@bulwark/crypto';
import { GENESIS_PREVIOUS_HASH, canonicalDetails, checkProducer, computeEventHash, type LedgerEvent } from '@bulwark/events';
import { LedgerKeySchedule } from '@bulwark/ledger-reader';
import { isLedgerError } from './errors.js';
import type { AuditLedger } from './ledger.js';
import { CompactRange, edgeNodeIds } from './merkle/compact-range.js';
import { leafHash } from './merkle/hash.js';
import { openCheckpoint } from './note/checkpoint.js';
import type { VerifyProblem } from './verify.js';
import { formatVerifierKey, verifierKey, type VerifierKey } from './note/keys.js';
import { observeStored } from './signing-keys.js';

export const EXPORT_FORMAT = 'bulwark-audit-export/v2';
/** The format before producer-bound events (event hash v1): recognised only to be refused clearly. */
const EXPORT_FORMAT_V1 = 'bulwark-audit-export/v1';

export interface ExportOptions {
  /** First seq to export (default 0). */
  readonly fromSeq?: number;
  /** Events per database read (default 1000). */
  readonly pageSize?: number;
}

/**
 * Lines of the export (each ending in a newline), up to a checkpoint of the current size
 * that this call signs (or reuses); events appended meanwhile are left for the next export.
 */
export async function* exportLedger(ledger: AuditLedger, options: ExportOptions = {}): AsyncGenerator<string> {
  const fromSeq = options.fromSeq ?? 0;
  const pageSize = options.pageSize ?? 1000;
  const checkpoint = await ledger.checkpoint();
  const startEdge = await ledger.edgeAt(Math.min(fromSeq, checkpoint.size));
  // The header names the key in force at from_seq: the one an auditor trusts to start there (the first key from seq 0).
  yield exportHeaderLine({ origin: ledger.origin, logKey: await ledger.keyAt(Math.min(fromSeq, checkpoint.size)), fromSeq, size: checkpoint.size, startEdge });
  for (let next = fromSeq; next < checkpoint.size; ) {
    const events = await ledger.events(next, Math.min(pageSize, checkpoint.size - next));
    if (events.length === 0) break;
    for (const event of events) yield exportEventLine(event);
    next = events[events.length - 1]!.seq + 1;
  }
  yield exportCheckpointLine(checkpoint.note);
}

// The line writers of the export format: every producer of an export (the ledger, the
// read-only archive reader) writes through them, so the format lives beside its verifier.

export function exportHeaderLine(header: { origin: string; logKey: VerifierKey; fromSeq: number; size: number; startEdge: readonly Uint8Array[] }): string {
  return line({
    type: 'header',
    format: EXPORT_FORMAT,
    origin: header.origin,
    log_key: formatVerifierKey(header.logKey),
    from_seq: header.fromSeq,
    size: header.size,
    start_edge: header.startEdge.map(toHex),
  });
}

/** `detailsJcs`: the stored canonical text when the caller has it (else it is rebuilt from `details`). */
export function exportEventLine(event: LedgerEvent, detailsJcs: string = canonicalDetails(event.details)): string {
  return line({
    type: 'event',
    seq: event.seq,
    event_id: event.eventId,
    timestamp: event.timestamp,
    producer: event.producer,
    agent_id: event.agentId,
    event_type: event.eventType,
    details: event.details,
    details_jcs: detailsJcs,
    previous_hash: toHex(event.previousHash),
    event_hash: toHex(event.eventHash),
    signature: toHex(event.signature),
  });
}

export function exportCheckpointLine(note: string): string {
  return line({ type: 'checkpoint', note });
}

function line(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

export interface VerifyExportOptions {
  readonly crypto: CryptoProvider;
  /**
   * The ledger key the auditor trusts (from configuration, not from the file): its first key, or
   * for an export from seq F > 0 the key in force at F. Later keys are the ones the chain's own key
   * changes name, as the export's events carry them.
   */
  readonly logKey: VerifierKey;
  readonly origin: string;
}

export type ExportReport =
  | { readonly ok: true; readonly fromSeq: number; readonly size: number; readonly events: number; readonly rootHash: Uint8Array }
  | { readonly ok: false; readonly seq?: number; readonly line: number; readonly problem: ExportProblem; readonly message: string };

/** As verifyLedger's `problem` (the online form), plus what only a file can get wrong. */
export type ExportProblem = VerifyProblem | 'details mismatch' | 'malformed';

class ExportFailure extends Error {
  constructor(readonly report: Extract<ExportReport, { ok: false }>) {
    super(report.message);
  }
}

function sameCanonical(details: Record<string, unknown>, detailsJcs: string): boolean {
  try {
    return canonicalDetails(details) === detailsJcs;
  } catch {
    return false;
  }
}

function bad(lineNumber: number, message: string, seq?: number, problem: ExportProblem = 'malformed'): ExportFailure {
  return new ExportFailure(seq === undefined ? { ok: false, line: lineNumber, problem, message } : { ok: false, seq, line: lineNumber, problem, message });
}

function field<T>(record: Record<string, unknown>, name: string, check: (v: unknown) => v is T, lineNumber: number): T {
  const value = record[name];
  if (!check(value)) throw bad(lineNumber, `line ${lineNumber}: field ${name} is missing or of the wrong type`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

function hexField(record: Record<string, unknown>, name: string, length: number, lineNumber: number, seq?: number): Uint8Array {
  const text = field(record, name, isString, lineNumber);
  try {
    const value = fromHex(text, name);
    if (value.length === length) return value;
  } catch {
    // reported below
  }
  throw bad(lineNumber, `line ${lineNumber}: ${name} is not ${length} bytes of hex`, seq);
}

/**
 * Checks an export line by line with constant memory: every event hash, chain link and
 * signature, continuity of seq, and the rebuilt Merkle root against the signed
 * checkpoint (which must verify with `logKey` and carry `origin`). Returns the first
 * problem, naming the line and, when it is one event's, its seq.
 */
export async function verifyExport(lines: AsyncIterable<string> | Iterable<string>, options: VerifyExportOptions): Promise<ExportReport> {
  try {
    return await verifyLines(lines, options);
  } catch (err) {
    if (err instanceof ExportFailure) return err.report;
    throw err;
  }
}

async function verifyLines(lines: AsyncIterable<string> | Iterable<string>, options: VerifyExportOptions): Promise<ExportReport> {
  const { crypto, logKey } = options;
  let lineNumber = 0;
  let header: { fromSeq: number; size: number } | undefined;
  let range: CompactRange | undefined;
  let previous: Uint8Array | undefined;
  let schedule: LedgerKeySchedule | undefined;
  let events = 0;
  let finished = false;

  for await (const raw of lines) {
    lineNumber += 1;
    const text = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (text.length === 0) continue;
    if (finished) throw bad(lineNumber, `line ${lineNumber}: content after the checkpoint line`);
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      throw bad(lineNumber, `line ${lineNumber}: not JSON`);
    }
    if (!isObject(record)) throw bad(lineNumber, `line ${lineNumber}: not a JSON object`);
    const type = record['type'];

    if (header === undefined) {
      if (type === 'header' && record['format'] === EXPORT_FORMAT_V1) {
        throw bad(lineNumber, `line ${lineNumber}: ${EXPORT_FORMAT_V1} (event hash v1, events without a producer) is not verified by this version; it reads ${EXPORT_FORMAT}`);
      }
      if (type !== 'header' || record['format'] !== EXPORT_FORMAT) throw bad(lineNumber, `line ${lineNumber}: expected the ${EXPORT_FORMAT} header`);
      if (record['origin'] !== options.origin) throw bad(lineNumber, `line ${lineNumber}: origin ${JSON.stringify(record['origin'])} is not ${JSON.stringify(options.origin)}`);
      if (record['log_key'] !== formatVerifierKey(logKey)) throw bad(lineNumber, `line ${lineNumber}: the export names another ledger key than the one trusted`);
      const fromSeq = field(record, 'from_seq', isInteger, lineNumber);
      const size = field(record, 'size', isInteger, lineNumber);
      const edgeHex = field(record, 'start_edge', isStringArray, lineNumber);
      if (fromSeq > size) throw bad(lineNumber, `line ${lineNumber}: from_seq ${fromSeq} is beyond size ${size}`);
      if (edgeHex.length !== edgeNodeIds(fromSeq).length) throw bad(lineNumber, `line ${lineNumber}: start_edge has ${edgeHex.length} hashes, a tree of ${fromSeq} needs ${edgeNodeIds(fromSeq).length}`);
      const edge = edgeHex.map((_, i) => hexField({ h: edgeHex[i] }, 'h', 32, lineNumber));
      range = new CompactRange(crypto, fromSeq, edge);
      schedule = new LedgerKeySchedule(logKey.publicKey, fromSeq);
      header = { fromSeq, size };
      continue;
    }

    if (type === 'event') {
      const seq = field(record, 'seq', isInteger, lineNumber);
      const expected = range!.size;
      if (seq !== expected) throw bad(lineNumber, seq > expected ? `gap: seq ${expected} missing` : `line ${lineNumber}: seq ${seq} out of order (expected ${expected})`, expected, 'gap');
      if (seq >= header.size) throw bad(lineNumber, `seq ${seq}: beyond the checkpoint size ${header.size}`, seq, 'beyond head');
      const previousHash = hexField(record, 'previous_hash', 32, lineNumber, seq);
      const eventHash = hexField(record, 'event_hash', 32, lineNumber, seq);
      const signature = hexField(record, 'signature', 64, lineNumber, seq);
      const producer = field(record, 'producer', isString, lineNumber);
      const agentId = field(record, 'agent_id', isString, lineNumber);
      const eventType = field(record, 'event_type', isString, lineNumber);
      const detailsJcs = field(record, 'details_jcs', isString, lineNumber);
      let recomputed: Uint8Array | undefined;
      try {
        recomputed = computeEventHash(crypto, {
          seq,
          eventId: field(record, 'event_id', isString, lineNumber),
          timestamp: field(record, 'timestamp', isInteger, lineNumber),
          producer,
          agentId,
          eventType,
          detailsJcs,
          previousHash,
        });
      } catch (err) {
        if (err instanceof ExportFailure) throw err;
        recomputed = undefined;
      }
      if (recomputed === undefined || !crypto.equal(recomputed, eventHash)) throw bad(lineNumber, `seq ${seq}: event_hash mismatch`, seq, 'event_hash mismatch');
      // The readable field must say what was hashed (compared canonically: key order is JSON.stringify's).
      if (!sameCanonical(field(record, 'details', isObject, lineNumber), detailsJcs)) {
        throw bad(lineNumber, `seq ${seq}: details differ from details_jcs (the text that was hashed)`, seq, 'details mismatch');
      }
      // The first event of an export that starts past 0 links to an event not in the file; the root check covers it.
      const link = previous ?? (seq === 0 ? GENESIS_PREVIOUS_HASH : undefined);
      if (link !== undefined && !crypto.equal(previousHash, link)) throw bad(lineNumber, seq === 0 ? 'seq 0: previous_hash is not the genesis value' : `seq ${seq}: previous_hash does not link to seq ${seq - 1}`, seq, 'previous_hash does not link');
      if (!crypto.ed25519.verify(schedule!.keyFor(seq), eventHash, signature)) throw bad(lineNumber, `seq ${seq}: signature invalid`, seq, 'signature invalid');
      // Signed by the ledger yet forbidden: the ledger's ingest check was bypassed or broken (DESIGN §3a).
      const forbidden = checkProducer(producer, eventType, agentId);
      if (forbidden !== null) throw bad(lineNumber, `seq ${seq}: forbidden producer: ${forbidden}`, seq, 'forbidden producer');
      const change = observeStored(schedule!, { seq, producer, eventType, agentId, detailsJcs });
      if (change !== null) throw bad(lineNumber, `seq ${seq}: ${change}`, seq, 'ledger key change');
      range!.append(leafHash(crypto, eventHash));
      previous = eventHash;
      events += 1;
      continue;
    }

    if (type === 'checkpoint') {
      const note = field(record, 'note', isString, lineNumber);
      let checkpoint;
      try {
        checkpoint = openCheckpoint(crypto, note, { origin: options.origin, logKey: verifierKey(crypto, options.origin, schedule!.keyFor(header.size)) }).checkpoint;
      } catch (cause) {
        throw bad(lineNumber, `line ${lineNumber}: checkpoint does not verify: ${isLedgerError(cause) ? cause.message : String(cause)}`, undefined, 'checkpoint invalid');
      }
      if (checkpoint.size !== header.size) throw bad(lineNumber, `line ${lineNumber}: checkpoint size ${checkpoint.size} is not the header's ${header.size}`, undefined, 'checkpoint invalid');
      if (range!.size !== header.size) throw bad(lineNumber, `truncated: seq ${range!.size} missing: the export ends before size ${header.size}`, range!.size, 'truncated');
      if (!crypto.equal(range!.root(), checkpoint.rootHash)) throw bad(lineNumber, `line ${lineNumber}: the events do not rebuild the checkpoint's root hash`, undefined, 'checkpoint mismatch');
      finished = true;
      continue;
    }
    throw bad(lineNumber, `line ${lineNumber}: unknown record type ${JSON.stringify(type)}`);
  }

  if (header === undefined) throw bad(lineNumber, 'empty export: no header');
  if (!finished) throw bad(lineNumber, `truncated: the export has no checkpoint line after seq ${range!.size - 1}`, range!.size, 'truncated');
  return { ok: true, fromSeq: header.fromSeq, size: header.size, events, rootHash: range!.root() };
}
