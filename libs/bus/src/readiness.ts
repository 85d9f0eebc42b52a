import type { Bus } from './connect.js';
import { missingStreams } from './streams.js';
import type { StreamKey } from './subjects.js';

export interface Readiness {
  readonly ready: boolean;
  readonly natsConnected: boolean;
  /** Expected streams that do not exist (in the bus's namespace). */
  readonly missingStreams: readonly string[];
  /** Why it is not ready, one line; empty when ready. */
  readonly reason: string;
}

/**
 * Readiness as DESIGN §11 defines the bus's part of it: NATS connected and the streams
 * present. A service adds its own checks (database reachable) on top.
 */
export async function checkReadiness(bus: Bus, streams: readonly StreamKey[] = ['events', 'ledger', 'incidents']): Promise<Readiness> {
  if (!bus.isConnected()) {
    return { ready: false, natsConnected: false, missingStreams: [], reason: `NATS at ${bus.url} is not connected` };
  }
  let missing: string[];
  try {
    missing = await missingStreams(bus, streams);
  } catch (e) {
    return { ready: false, natsConnected: true, missingStreams: [], reason: `cannot read streams on ${bus.url}: ${e instanceof Error ? e.message : String(e)}` };
  }
  return {
    ready: missing.length === 0,
    natsConnected: true,
    missingStreams: missing,
    reason: missing.length === 0 ? '' : `streams missing on ${bus.url}: ${missing.join(', ')}`,
  };
}
