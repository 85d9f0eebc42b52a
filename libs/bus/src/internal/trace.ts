import type { HeaderCarrier } from '../headers.js';

/**
 * Trace-context propagation as the bus uses it: write the current context into outgoing
 * headers, and run a handler inside the context read from incoming headers.
 */
export interface TracePropagation {
  inject(carrier: HeaderCarrier): void;
  runExtracted<T>(carrier: HeaderCarrier, fn: () => T): T;
}

let propagation: TracePropagation = {
  inject: () => undefined,
  runExtracted: (_carrier, fn) => fn(),
};

export function tracePropagation(): TracePropagation {
  return propagation;
}

export function setTracePropagation(p: TracePropagation): void {
  propagation = p;
}
