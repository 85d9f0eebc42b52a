import type { BulwarkConfig } from './settings.js';

/** One stream's limits, in the shape @bulwark/bus `StreamLimits` takes. */
export interface StreamLimitValues {
  readonly maxBytes: number;
  readonly maxMessages: number;
  readonly maxMessageSize: number;
}

export interface BusLimits {
  /** For @bulwark/bus `streamSpecs(limits.streams)`, which `ensureStreams` takes. */
  readonly streams: { readonly events: StreamLimitValues; readonly ledger: StreamLimitValues; readonly incidents: StreamLimitValues };
  /** For @bulwark/bus `openDirectoryBucket(bus, limits.directory)`. */
  readonly directory: { readonly maxBytes: number; readonly maxMessages: number; readonly maxValueSize: number };
}

/** The `[bus]` table as the bus's stream and bucket limits. */
export function busLimits(config: Pick<BulwarkConfig, 'bus'>): BusLimits {
  const b = config.bus;
  const stream = (prefix: 'events' | 'ledger' | 'incidents'): StreamLimitValues => ({
    maxBytes: b[`${prefix}_max_bytes`],
    maxMessages: b[`${prefix}_max_messages`],
    maxMessageSize: b[`${prefix}_max_message_size`],
  });
  return {
    streams: { events: stream('events'), ledger: stream('ledger'), incidents: stream('incidents') },
    directory: { maxBytes: b.directory_max_bytes, maxMessages: b.directory_max_messages, maxValueSize: b.directory_max_value_size },
  };
}
