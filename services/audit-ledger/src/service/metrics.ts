import { consumerBacklog, streamUsage, type Bus } from '@bulwark/bus';
import type { Telemetry } from '@bulwark/telemetry';
import type { LedgerService } from './service.js';
import { LEDGER_DURABLE } from './service.js';

/**
 * The ledger's instruments, read when a reader collects (Prometheus scrape, OTLP export):
 * size, events not yet re-published, the ingest backlog of its durable, what it appended and
 * deduplicated, and the usage of every stream.
 */
export function observeLedgerService(meter: Telemetry['meter'], bus: Bus, service: LedgerService): void {
  const size = meter.createObservableGauge('bulwark.ledger.size', { description: 'events in the ledger (its head size)' });
  const publishLag = meter.createObservableGauge('bulwark.ledger.publish_lag', { description: 'committed events not yet re-published on BULWARK_LEDGER' });
  const ingestLag = meter.createObservableGauge('bulwark.ledger.ingest_lag', { description: 'BULWARK_EVENTS messages not yet delivered to the ledger' });
  const appended = meter.createObservableCounter('bulwark.ledger.appended', { description: 'events appended by this instance' });
  const duplicates = meter.createObservableCounter('bulwark.ledger.duplicates', { description: 'redelivered events appended nothing' });
  const messages = meter.createObservableGauge('bulwark.stream.messages', { description: 'messages in a stream' });
  const bytes = meter.createObservableGauge('bulwark.stream.bytes', { description: 'bytes in a stream' });
  const limit = meter.createObservableGauge('bulwark.stream.max_bytes', { description: "a stream's byte limit (-1: none)" });
  meter.addBatchObservableCallback(
    async (result) => {
      const m = service.metrics();
      result.observe(appended, m.appended);
      result.observe(duplicates, m.duplicates);
      const head = await service.ledger.head().catch(() => undefined);
      if (head !== undefined) {
        result.observe(size, head.size);
        result.observe(publishLag, Math.max(0, head.size - m.published));
      }
      const backlog = await consumerBacklog(bus, 'events', LEDGER_DURABLE).catch(() => undefined);
      if (backlog !== undefined) result.observe(ingestLag, backlog.pending + backlog.ackPending);
      for (const s of await streamUsage(bus).catch(() => [])) {
        result.observe(messages, s.messages, { stream: s.stream });
        result.observe(bytes, s.bytes, { stream: s.stream });
        result.observe(limit, s.maxBytes, { stream: s.stream });
      }
    },
    [size, publishLag, ingestLag, appended, duplicates, messages, bytes, limit],
  );
}
