import { Svcm } from '@nats-io/services';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import type { Readiness } from './readiness.js';
import type { ServiceName, StreamKey } from './subjects.js';

/** One running instance of a service, as `$SRV.INFO` and `$SRV.STATS` describe it. */
export interface DiscoveredInstance {
  readonly id: string;
  readonly version: string;
  /** The subjects of its endpoints (in the bus's namespace). */
  readonly subjects: readonly string[];
  /** The readiness its STATS endpoint data reports; undefined when it did not answer STATS. */
  readonly readiness: Readiness | undefined;
}

/**
 * The instances of a service that answer `$SRV.INFO.bulwark-<service>` within `maxWaitMs`,
 * in this bus's namespace, with the readiness from their `$SRV.STATS`.
 */
export async function discoverService(bus: Bus, service: ServiceName, maxWaitMs = 500): Promise<DiscoveredInstance[]> {
  const svcm = new Svcm(natsOf(bus).nc as unknown as ConstructorParameters<typeof Svcm>[0]);
  const client = svcm.client({ maxWait: maxWaitMs } as Parameters<Svcm['client']>[0]);
  const name = `bulwark-${service}`;
  const infos = new Map<string, { version: string; subjects: string[] }>();
  for await (const info of await client.info(name)) {
    if ((info.metadata?.['namespace'] ?? '') !== bus.namespace.subjectPrefix) continue;
    infos.set(info.id, { version: info.version, subjects: info.endpoints.map((e) => e.subject) });
  }
  const readiness = new Map<string, Readiness>();
  if (infos.size > 0) {
    for await (const stats of await client.stats(name)) {
      const data = stats.endpoints?.[0]?.data as Readiness | undefined;
      if (infos.has(stats.id) && data !== undefined) readiness.set(stats.id, data);
    }
  }
  return [...infos].map(([id, i]) => ({ id, version: i.version, subjects: i.subjects, readiness: readiness.get(id) }));
}

/** How full a stream is (for metrics): messages and bytes against its limits (-1 = none). */
export interface StreamUsage {
  readonly stream: string;
  readonly messages: number;
  readonly bytes: number;
  readonly maxMessages: number;
  readonly maxBytes: number;
}

/** The usage of each of these streams that exists, in this bus's namespace. */
export async function streamUsage(bus: Bus, streams: readonly StreamKey[] = ['events', 'ledger', 'incidents']): Promise<StreamUsage[]> {
  const out: StreamUsage[] = [];
  for (const key of streams) {
    const name = bus.streamName(key);
    try {
      const info = await natsOf(bus).jsm.streams.info(name);
      out.push({ stream: name, messages: info.state.messages, bytes: info.state.bytes, maxMessages: info.config.max_msgs, maxBytes: info.config.max_bytes });
    } catch {
      // Missing (readiness reports that); nothing to measure.
    }
  }
  return out;
}
