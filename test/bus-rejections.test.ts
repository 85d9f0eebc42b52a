// End to end over the real NATS: an attacker floods the events stream with tampered
// frames; the ledger's consumer drops every one before its handler, and the rejections
// reach the ledger as sealed `bulwark.evt.bus.rejected` events, rate-limited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import {
  connectBus,
  createEventPublisher,
  createRejectionReporter,
  ensureStreams,
  Events,
  LEDGER_PRINCIPAL,
  removeNamespaceStreams,
  startStreamConsumer,
  uniqueNamespace,
  type Bus,
  type RejectionEvent,
} from '@bulwark/bus';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const provider = createCryptoProvider('node');
const DAY_MS = 86_400_000;

async function until(check: () => boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('bus rejection reporting end to end', () => {
  const ns = uniqueNamespace('rej');
  let ledgerBus: Bus;
  let attacker: NatsConnection;

  beforeAll(async () => {
    ledgerBus = await connectBus({ url: NATS_URL, name: 'ledger', namespace: ns });
    await ensureStreams(ledgerBus);
    attacker = await connect({ servers: NATS_URL, name: 'attacker' });
  });

  afterAll(async () => {
    await removeNamespaceStreams(ledgerBus);
    await ledgerBus.close();
    await attacker.close();
  });

  it('drops a flood of tampered frames and reports them at a bounded rate', async () => {
    const w = testWorld({ provider, ids: ['svc.policy', LEDGER_PRINCIPAL] });
    const receiver = () => new SealedReceiver({ provider, self: w.identity(LEDGER_PRINCIPAL), directory: w.directory, skewMs: DAY_MS });
    // The ledger reports its own rejections as events sealed to itself.
    const ownEvents = createEventPublisher(ledgerBus, new SealedSender({ provider, self: w.identity(LEDGER_PRINCIPAL), directory: w.directory, recipientId: LEDGER_PRINCIPAL }));
    const reporter = createRejectionReporter(ownEvents, { reporter: LEDGER_PRINCIPAL, ratePerSecond: 1, burst: 3 });

    let handled = 0;
    const policyEvents = await startStreamConsumer(ledgerBus, receiver(), { stream: 'events', durable: 'ledger-policy', filterSubject: 'bulwark.evt.policy.>' }, async () => void handled++, reporter);

    const reports: RejectionEvent[] = [];
    const audit = await startStreamConsumer(
      ledgerBus,
      receiver(),
      { stream: 'events', durable: 'ledger-rejections', filterSubject: Events.bus.rejected },
      async (d) => void reports.push(JSON.parse(new TextDecoder().decode(d.plaintext)) as RejectionEvent),
      reporter,
    );

    // One genuine event, then the flood: copies of a real frame with one bit flipped.
    const policy = new SealedSender({ provider, self: w.identity('svc.policy'), directory: w.directory, recipientId: LEDGER_PRINCIPAL });
    await createEventPublisher(ledgerBus, policy).publish({ subject: Events.policy.decision, eventId: 'genuine-1', payload: new TextEncoder().encode('{}') });
    const FLOOD = 300;
    const started = Date.now();
    const js = jetstream(attacker);
    for (let i = 0; i < FLOOD; i++) {
      const frame = policy.seal(new TextEncoder().encode(`forged ${i}`));
      frame[frame.length - 1]! ^= 0x80;
      await js.publish(`${ns.subjectPrefix}${Events.policy.decision}`, frame, { msgID: `forged-${i}` });
    }
    await until(() => policyEvents.metrics().rejected === FLOOD, 20_000, 'every forged frame rejected');
    const elapsedS = (Date.now() - started) / 1000;
    await reporter.flush();

    expect(handled).toBe(1);
    const m = reporter.metrics();
    expect(m.rejectedByReason['E_MAC']).toBe(FLOOD);
    expect(m.reported + m.suppressed).toBe(FLOOD);
    // burst 3, then 1/s: the flood cannot amplify itself into the ledger.
    expect(m.reported).toBeLessThanOrEqual(3 + Math.ceil(elapsedS) + 1);

    await until(() => reports.length === m.reported, 10_000, 'reports stored and consumed');
    expect(audit.metrics().rejected).toBe(0);
    for (const r of reports) {
      expect(r.event_type).toBe('security_violation');
      expect(r.details).toMatchObject({ kind: 'bus.rejected', reason: 'E_MAC', claimed_sender: 'svc.policy', subject: Events.policy.decision, reporter: LEDGER_PRINCIPAL });
    }
    await policyEvents.stop();
    await audit.stop();
  });
});
