/**
 * Asks the ledger for events after the core's position every `intervalMs` (never two at once,
 * never after a halt): what catches a deleted tail, and what feeds a reader that has no stream.
 */
import type { Logger } from '@bulwark/telemetry';
import type { ReaderCore } from './core.js';

export interface PeriodicSync {
  stop(): void;
}

export function startPeriodicSync(core: ReaderCore, options: { readonly intervalMs: number; readonly reader: string; readonly logger?: Logger; readonly ready?: () => boolean }): PeriodicSync {
  if (options.intervalMs <= 0) return { stop: () => undefined };
  let syncing = false;
  const timer = setInterval(() => {
    if (syncing || core.halted !== undefined || options.ready?.() === false) return;
    syncing = true;
    core
      .sync()
      .catch((e: unknown) => options.logger?.warn({ err: e, reader: options.reader }, 'ledger reader: the ledger could not be asked for events after the position; will try again'))
      .finally(() => (syncing = false));
  }, options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
