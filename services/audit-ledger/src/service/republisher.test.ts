import { afterEach, describe, expect, it } from 'vitest';
import { LEDGER_BATCH_SUBJECT, ledgerControlSubject } from '@bulwark/bus';
import { sql } from 'kysely';
import { decodeEventBatch, decodeLedgerBatch, isControlEventType, isLedgerEvent } from '@bulwark/events';
import { makeEvents, openTestLedger, produced, type LedgerFixture } from '../ledger.fixture.js';
import { LedgerError } from '../errors.js';
import { Republisher } from './republisher.js';

describe('Republisher', () => {
  let fixture: LedgerFixture | undefined;
  afterEach(async () => {
    await fixture?.close();
    fixture = undefined;
  });

  it('publishes every event on the batch subject, and the control-plane ones again to each control recipient on its own subject', async () => {
    fixture = await openTestLedger('republish');
    // makeEvents cycles through every event type, so control and activity types are mixed.
    await fixture.ledger.append(produced(makeEvents(240)));
    const head = (await fixture.ledger.head()).size;
    type Sent = { subject: string; msgId: string; payload: Uint8Array };
    const sent: Sent[] = [];
    const toKeys: Sent[] = [];
    const republisher = new Republisher({
      db: fixture.db,
      ledger: fixture.ledger,
      publisher: { publish: async (m) => void sent.push(m) },
      controlPublishers: [
        { recipient: 'svc.policy', publisher: { publish: async (m) => void sent.push(m) } },
        { recipient: 'svc.key-manager', publisher: { publish: async (m) => void toKeys.push(m) } },
      ],
    });
    expect(await republisher.catchUp()).toBe(head);
    const POLICY_CONTROL = ledgerControlSubject('svc.policy');
    expect(POLICY_CONTROL).toBe('bulwark.ledger.control.svc.policy');

    const all = sent.filter((m) => m.subject === LEDGER_BATCH_SUBJECT).flatMap((m) => decodeEventBatch(m.payload));
    expect(all.map((e) => (isLedgerEvent(e) ? e.seq : -1))).toEqual(Array.from({ length: head }, (_, i) => i));
    const controlMessages = sent.filter((m) => m.subject === POLICY_CONTROL);
    expect(sent.every((m) => m.subject === LEDGER_BATCH_SUBJECT || m.subject === POLICY_CONTROL)).toBe(true);
    expect(toKeys.every((m) => m.subject === 'bulwark.ledger.control.svc.key-manager' && m.msgId.startsWith('control:svc.key-manager:'))).toBe(true);
    expect(toKeys.flatMap((m) => decodeEventBatch(m.payload))).toEqual(controlMessages.flatMap((m) => decodeEventBatch(m.payload)));
    const control = controlMessages.flatMap((m) => decodeEventBatch(m.payload));
    expect(control.length).toBeGreaterThan(0);
    expect(control).toEqual(all.filter((e) => isControlEventType(e.eventType)));
    // Each control batch is named after the full batch it was taken from.
    const batchIds = new Set(sent.filter((m) => m.subject === LEDGER_BATCH_SUBJECT).map((m) => m.msgId));
    expect(controlMessages.every((m) => m.msgId.startsWith('control:svc.policy:') && batchIds.has(m.msgId.slice('control:svc.policy:'.length)))).toBe(true);
    // Every event carries its producer, as stored.
    expect(all.every((e) => isLedgerEvent(e) && e.producer.length > 0)).toBe(true);
  });

  it('ends a chunk at every channel epoch announcement, and reports each chunk once it is on the stream', async () => {
    fixture = await openTestLedger('republish_epochs');
    // makeEvents cycles through every event type: keys.channel_epoch among them, mid-chunk.
    await fixture.ledger.append(produced(makeEvents(240)));
    const sent: { subject: string; msgId: string; payload: Uint8Array }[] = [];
    const reported: number[][] = [];
    const republisher = new Republisher({
      db: fixture.db,
      ledger: fixture.ledger,
      publisher: { publish: async (m) => void sent.push(m) },
      endsChunk: (e) => e.eventType === 'keys.channel_epoch',
      published: (events) => void reported.push(events.map((e) => e.seq)),
    });
    await republisher.catchUp();
    const chunks = sent.map((m) => decodeLedgerBatch(m.payload).events);
    const announcements = chunks.flat().filter((e) => e.eventType === 'keys.channel_epoch');
    expect(announcements.length).toBeGreaterThan(1);
    // Every announcement is the last event of its chunk: whatever follows it is in the next chunk (sealed under the new epoch).
    for (const chunk of chunks) expect(chunk.slice(0, -1).some((e) => e.eventType === 'keys.channel_epoch')).toBe(false);
    expect(reported).toEqual(chunks.map((c) => c.map((e) => e.seq)));
  });

  it('links each control batch to the control event before it (control_previous_seq), and full batches not at all', async () => {
    fixture = await openTestLedger('republish_ctl');
    // Small appends, so that a chunk holds few events: several control batches, some chunks with none.
    for (let i = 0; i < 12; i++) await fixture.ledger.append(produced(makeEvents(i % 3 === 0 ? 40 : 7)));
    const sent: { subject: string; msgId: string; payload: Uint8Array }[] = [];
    const control: typeof sent = [];
    const make = () =>
      new Republisher({
        db: fixture!.db,
        ledger: fixture!.ledger,
        publisher: { publish: async (m) => void sent.push(m) },
        controlPublishers: [{ recipient: 'svc.policy', publisher: { publish: async (m) => void control.push(m) } }],
      });
    // Published in several rounds (appends in between), so that there are several chunks.
    const republisher = make();
    await republisher.catchUp();
    await fixture.ledger.append(produced(makeEvents(60)));
    await republisher.catchUp();
    expect(control.length).toBeGreaterThanOrEqual(2);

    for (const m of sent) expect(decodeLedgerBatch(m.payload).controlPreviousSeq).toBeUndefined();
    const decoded = control.map((m) => decodeLedgerBatch(m.payload));
    const allControlSeqs = sent.flatMap((m) => decodeLedgerBatch(m.payload).events).filter((e) => isControlEventType(e.eventType)).map((e) => e.seq);
    let previous = -1;
    for (const batch of decoded) {
      expect(batch.controlPreviousSeq).toBe(previous);
      previous = batch.events[batch.events.length - 1]!.seq;
    }
    expect(decoded.flatMap((b) => b.events.map((e) => e.seq))).toEqual(allControlSeqs);

    // After a crash with the last chunk pending, the chunk is re-sent byte for byte (field 2 included).
    const lastFull = sent[sent.length - 1]!;
    const [first, last] = lastFull.msgId.split('-').map(Number) as [number, number];
    await sql`update publish_state set published = ${first}::int8, pending_end = ${last}::int8`.execute(fixture.db);
    const before = { sent: sent.length, control: control.length };
    await make().catchUp();
    expect(sent.slice(before.sent)).toEqual([lastFull]);
    const lastControl = control[before.control - 1]!;
    // makeEvents cycles through every type, so the 60 events of the last chunk hold control events.
    expect(lastControl.msgId).toBe(`control:svc.policy:${lastFull.msgId}`);
    expect(control.slice(before.control)).toEqual([lastControl]);
    expect(decodeLedgerBatch(lastControl.payload).controlPreviousSeq).toBeGreaterThanOrEqual(0);
  });

  it('a reader it cannot seal to (withheld) does not hold the others: the control batches go out and the mark moves; any other failure is retried', async () => {
    fixture = await openTestLedger('republish_withheld');
    await fixture.ledger.append(produced(makeEvents(60)));
    const head = (await fixture.ledger.head()).size;
    const control: string[] = [];
    const withheld: number[] = [];
    const absent = { publish: async () => Promise.reject(new LedgerError('E_LEDGER_WITHHELD', 'no valid directory entry for svc.incident-response')) };
    const republisher = new Republisher({
      db: fixture.db,
      ledger: fixture.ledger,
      publisher: absent,
      controlPublishers: [
        { recipient: 'svc.gone', publisher: absent },
        { recipient: 'svc.policy', publisher: { publish: async (m) => void control.push(m.msgId) } },
      ],
      onWithheld: (_error, chunk) => void withheld.push(chunk.first),
    });
    expect(await republisher.catchUp()).toBe(head);
    expect(control.length).toBeGreaterThan(0);
    expect(republisher.withheld).toBe(withheld.length);
    expect(withheld.length).toBeGreaterThanOrEqual(2);
    // A failure that is not a withholding (the stream down) fails the chunk: nothing moves, the loop retries.
    await fixture.ledger.append(produced(makeEvents(5)));
    const down = new Republisher({ db: fixture.db, ledger: fixture.ledger, publisher: { publish: async () => Promise.reject(new Error('stream unavailable')) } });
    await expect(down.catchUp()).rejects.toThrow('stream unavailable');
    const state = await fixture.db.selectFrom('publish_state').select(['published']).executeTakeFirstOrThrow();
    expect(Number(state.published)).toBe(head);
  });

  it('refuses a control recipient that is not a principal id of subject tokens', () => {
    expect(() => ledgerControlSubject('svc.*')).toThrow(/not a principal id of subject tokens/);
    expect(() => ledgerControlSubject('svc..policy')).toThrow(/not a principal id/);
  });
});
