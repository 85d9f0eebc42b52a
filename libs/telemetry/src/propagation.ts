import { context as contextApi, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

/**
 * The part of a message's headers that trace context needs. NATS `MsgHdrs` fits it, so
 * libs/bus passes its headers here without this package importing NATS.
 */
export interface HeaderCarrier {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

// Only `traceparent` and `tracestate` cross the bus: W3C baggage would carry arbitrary
// caller data into services that trust nothing from the wire.
const propagator = new W3CTraceContextPropagator();

const getter: TextMapGetter<HeaderCarrier> = {
  get: (carrier, key) => carrier.get(key),
  keys: () => propagator.fields(),
};

const setter: TextMapSetter<HeaderCarrier> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** Writes the span of `context` (the active one by default) as W3C trace context headers. */
export function injectTraceContext(carrier: HeaderCarrier, context: Context = contextApi.active()): void {
  propagator.inject(context, carrier, setter);
}

/**
 * Reads W3C trace context headers into a context whose span is the remote parent. Absent
 * or malformed headers leave `base` unchanged: a bad header must never fail a message.
 */
export function extractTraceContext(carrier: HeaderCarrier, base: Context = contextApi.active()): Context {
  return propagator.extract(base, carrier, getter);
}
