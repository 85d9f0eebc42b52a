import { afterEach, describe, expect, it } from 'vitest';
import { LEDGER_BATCH_SUBJECT, LEDGER_CONTROL_SUBJECT } from '@bulwark/bus';
import { decodeEventBatch, isControlEventType, isLedgerEvent } from '@bulwark/events';
import { makeEvents, openTestLedger, type LedgerFixture } from '../ledger.fixture.js';
import { Republisher } from './republisher.js';

describe('Republisher', () => {
  let fixture: LedgerFixture | undefined;
  afterEach(async () => {
    await fixture?.close();
    fixture = undefined;
  });

  it('publishes every event on the batch subject, and the control-plane ones again on the control subject', async () => {
    fixture = await openTestLedger('republish');
    // makeEvents cycles through every event type, so control and activity types are mixed.
    await fixture.ledger.append(makeEvents(240));
    const head = (await fixture.ledger.head()).size;
    const sent: { subject: string; msgId: string; payload: Uint8Array }[] = [];
    const republisher = new Republisher({ db: fixture.db, ledger: fixture.ledger, publisher: { publish: async (m) => void sent.push(m) } });
    expect(await republisher.catchUp()).toBe(head);

    const all = sent.filter((m) => m.subject === LEDGER_BATCH_SUBJECT).flatMap((m) => decodeEventBatch(m.payload));
    expect(all.map((e) => (isLedgerEvent(e) ? e.seq : -1))).toEqual(Array.from({ length: head }, (_, i) => i));
    const controlMessages = sent.filter((m) => m.subject === LEDGER_CONTROL_SUBJECT);
    expect(sent.every((m) => m.subject === LEDGER_BATCH_SUBJECT || m.subject === LEDGER_CONTROL_SUBJECT)).toBe(true);
    const control = controlMessages.flatMap((m) => decodeEventBatch(m.payload));
    expect(control.length).toBeGreaterThan(0);
    expect(control).toEqual(all.filter((e) => isControlEventType(e.eventType)));
    // Each control batch is named after the full batch it was taken from.
    const batchIds = new Set(sent.filter((m) => m.subject === LEDGER_BATCH_SUBJECT).map((m) => m.msgId));
    expect(controlMessages.every((m) => m.msgId.startsWith('control:') && batchIds.has(m.msgId.slice('control:'.length)))).toBe(true);
  });
});
