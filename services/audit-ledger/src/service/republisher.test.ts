import { afterEach, describe, expect, it } from 'vitest';
import { LEDGER_BATCH_SUBJECT, ledgerControlSubject } from '@bulwark/bus';
import { decodeEventBatch, isControlEventType, isLedgerEvent } from '@bulwark/events';
import { makeEvents, openTestLedger, type LedgerFixture } from '../ledger.fixture.js';
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
    await fixture.ledger.append(makeEvents(240));
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
  });

  it('refuses a control recipient that is not a principal id of subject tokens', () => {
    expect(() => ledgerControlSubject('svc.*')).toThrow(/not a principal id of subject tokens/);
    expect(() => ledgerControlSubject('svc..policy')).toThrow(/not a principal id/);
  });
});
