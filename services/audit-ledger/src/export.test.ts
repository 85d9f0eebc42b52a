import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '@bulwark/crypto';
import { canonicalJson, computeEventHash } from '@bulwark/events';
import { ORIGIN, crypto, makeEvents, openTestLedger, produced, type LedgerFixture } from './ledger.fixture.js';
import { exportLedger, verifyExport } from './export.js';
import { signerKey } from './note/keys.js';

let fx: LedgerFixture;
let lines: string[];

async function collect(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of gen) out.push(l);
  return out;
}

beforeAll(async () => {
  fx = await openTestLedger('export', { checkpointEvery: 0 });
  await fx.ledger.append(produced(makeEvents(45)));
  lines = await collect(exportLedger(fx.ledger, { pageSize: 10 }));
});
afterAll(async () => {
  await fx?.close();
});

const options = () => ({ crypto, logKey: fx.ledger.verifierKey, origin: ORIGIN });
const edit = (index: number, change: (record: Record<string, unknown>) => void): string[] => {
  const copy = [...lines];
  const record = JSON.parse(copy[index]!) as Record<string, unknown>;
  change(record);
  copy[index] = `${JSON.stringify(record)}\n`;
  return copy;
};

describe('JSONL export', () => {
  it('writes a header, every event and a signed checkpoint', () => {
    expect(lines).toHaveLength(47);
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: 'header', from_seq: 0, size: 45, start_edge: [] });
    expect(JSON.parse(lines[1]!)).toMatchObject({ type: 'event', seq: 0 });
    expect(JSON.parse(lines[46]!)).toMatchObject({ type: 'checkpoint' });
  });

  it('verifies offline, rebuilding the signed root', async () => {
    const report = await verifyExport(lines, options());
    expect(report).toMatchObject({ ok: true, fromSeq: 0, size: 45, events: 45 });
    if (report.ok) expect(toHex(report.rootHash)).toBe(toHex((await fx.ledger.head()).rootHash));
  });

  it('verifies a file streamed line by line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-export-'));
    try {
      const file = join(dir, 'ledger.jsonl');
      writeFileSync(file, lines.join(''));
      const report = await verifyExport(createInterface({ input: createReadStream(file), crlfDelay: Infinity }), options());
      expect(report).toMatchObject({ ok: true, events: 45 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verifies an export that starts in the middle, through its start edge', async () => {
    const partial = await collect(exportLedger(fx.ledger, { fromSeq: 37 }));
    expect(JSON.parse(partial[0]!).start_edge).toHaveLength(3);
    expect(await verifyExport(partial, options())).toMatchObject({ ok: true, fromSeq: 37, events: 8 });
    const forgedEdge = [...partial];
    const header = JSON.parse(forgedEdge[0]!) as { start_edge: string[] };
    header.start_edge[0] = toHex(crypto.sha256(Uint8Array.of(0)));
    forgedEdge[0] = `${JSON.stringify(header)}\n`;
    expect(await verifyExport(forgedEdge, options())).toMatchObject({ ok: false, message: expect.stringContaining("do not rebuild the checkpoint's root") });
  });

  it.each([
    [
      'a changed detail',
      () =>
        edit(11, (r) => {
          (r['details'] as Record<string, unknown>)['n'] = -1;
          r['details_jcs'] = canonicalJson(r['details']);
        }),
      10,
      'seq 10: event_hash mismatch',
    ],
    ['a readable detail that is not what was hashed', () => edit(11, (r) => void ((r['details'] as Record<string, unknown>)['n'] = -1)), 10, 'seq 10: details differ from details_jcs (the text that was hashed)'],
    ['a changed agent', () => edit(5, (r) => void (r['agent_id'] = 'agent.mallory')), 4, 'seq 4: event_hash mismatch'],
    ['a changed producer', () => edit(6, (r) => void (r['producer'] = 'svc.policy' === r['producer'] ? 'svc.key-manager' : 'svc.policy')), 5, 'seq 5: event_hash mismatch'],
    ['a flipped signature', () => edit(3, (r) => void (r['signature'] = `${String(r['signature']).slice(0, -1)}${String(r['signature']).endsWith('0') ? '1' : '0'}`)), 2, 'seq 2: signature invalid'],
    ['a removed event', () => lines.filter((_, i) => i !== 20), 19, 'gap: seq 19 missing'],
    ['two swapped events', () => [...lines.slice(0, 8), lines[9]!, lines[8]!, ...lines.slice(10)], 7, 'gap: seq 7 missing'],
    ['the tail cut before the checkpoint', () => [...lines.slice(0, 40), lines[46]!], 39, 'truncated: seq 39 missing: the export ends before size 45'],
    ['no checkpoint line', () => lines.slice(0, 46), 45, 'truncated: the export has no checkpoint line after seq 44'],
  ])('names the first bad seq for %s', async (_name, tampered, seq, message) => {
    const report = await verifyExport(tampered(), options());
    expect(report).toMatchObject({ ok: false, seq, message });
    // The same problem names as the online verify (verifyLedger), plus what only a file can get wrong.
    const problems = ['event_hash mismatch', 'details mismatch', 'signature invalid', 'gap', 'truncated'];
    expect(report.ok ? undefined : problems.find((p) => p === report.problem)).toBe(report.ok ? 'ok' : report.problem);
  });

  it('names a forbidden producer even in an event hashed and signed with the ledger key', async () => {
    const forged = edit(45, (r) => {
      Object.assign(r, { producer: 'agent.intruder', agent_id: 'agent.intruder', event_type: 'policy.updated' });
      const eventHash = computeEventHash(crypto, {
        seq: r['seq'] as number,
        eventId: r['event_id'] as string,
        timestamp: r['timestamp'] as number,
        producer: 'agent.intruder',
        agentId: 'agent.intruder',
        eventType: 'policy.updated',
        detailsJcs: r['details_jcs'] as string,
        previousHash: fromHex(r['previous_hash'] as string),
      });
      r['event_hash'] = toHex(eventHash);
      r['signature'] = toHex(crypto.ed25519.sign(fx.signer.secretKey, eventHash));
    });
    expect(await verifyExport(forged, options())).toMatchObject({ ok: false, seq: 44, message: 'seq 44: forbidden producer: policy.updated may be produced only by svc.policy, not by agent.intruder' });
  });

  it('refuses a v1 export (event hash v1, no producer) and says why', async () => {
    const v1 = edit(0, (r) => void (r['format'] = 'bulwark-audit-export/v1'));
    expect(await verifyExport(v1, options())).toMatchObject({ ok: false, line: 1, message: expect.stringContaining('bulwark-audit-export/v1 (event hash v1, events without a producer) is not verified by this version') });
    expect(JSON.parse(lines[1]!)).toHaveProperty('producer');
  });

  it('refuses an export checked with another key or origin', async () => {
    const other = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
    expect(await verifyExport(lines, { ...options(), logKey: other })).toMatchObject({ ok: false, line: 1, message: expect.stringContaining('another ledger key') });
    expect(await verifyExport(lines, { ...options(), origin: 'elsewhere' })).toMatchObject({ ok: false, line: 1 });
  });
});

describe('JSONL export for an outside verifier', () => {
  let jcs: LedgerFixture;
  afterAll(async () => {
    await jcs?.close();
  });

  it('carries the canonical text that was hashed, whatever JSON.stringify does to integer-like keys', async () => {
    jcs = await openTestLedger('export_jcs', { checkpointEvery: 0 });
    const [event] = makeEvents(1);
    await jcs.ledger.append(produced([{ ...event!, details: { b: 1, '10': 'ten', '2': 'two', a: { '1': true, z: null } } }]));
    const exported = await collect(exportLedger(jcs.ledger));
    const record = JSON.parse(exported[1]!) as Record<string, unknown>;
    // JSON.stringify put "2" and "10" first: hashing the re-serialised details gives another hash.
    expect(JSON.stringify(record['details'])).toBe('{"2":"two","10":"ten","a":{"1":true,"z":null},"b":1}');
    expect(record['details_jcs']).toBe('{"10":"ten","2":"two","a":{"1":true,"z":null},"b":1}');
    const fields = {
      seq: record['seq'] as number,
      eventId: record['event_id'] as string,
      timestamp: record['timestamp'] as number,
      producer: record['producer'] as string,
      agentId: record['agent_id'] as string,
      eventType: record['event_type'] as never,
      previousHash: fromHex(record['previous_hash'] as string),
    };
    expect(toHex(computeEventHash(crypto, { ...fields, detailsJcs: record['details_jcs'] as string }))).toBe(record['event_hash']);
    expect(toHex(computeEventHash(crypto, { ...fields, detailsJcs: JSON.stringify(record['details']) }))).not.toBe(record['event_hash']);
    expect(await verifyExport(exported, { crypto, logKey: jcs.ledger.verifierKey, origin: ORIGIN })).toMatchObject({ ok: true, events: 1 });
  });
});
