import { BulwarkError } from '@bulwark/errors';

/** The NATS server could not be reached or refused the connection. */
export class BusConnectError extends BulwarkError {}

/** A stream or consumer exists with a configuration that cannot be reconciled. */
export class BusConfigError extends BulwarkError {}

/** A request got no answer in time: the caller must treat it as a deny. */
export class BusTimeoutError extends BulwarkError {}

/** Nobody listens on the subject (no instance of the service is up). */
export class BusUnavailableError extends BulwarkError {}

/** The peer answered, but with an error or an answer that failed its checks. */
export class BusRequestError extends BulwarkError {}

/** A publish was not confirmed by JetStream (no ack, wrong stream, ...). */
export class BusPublishError extends BulwarkError {}

/** Caller misuse: a subject or name that the bus refuses before touching NATS. */
export class BusUsageError extends BulwarkError {}

/**
 * JetStream refused a publish because the stream is full (its byte or message limit, or the
 * server's storage): `E_BUS_STREAM_FULL`, context `{ stream, subject, msgId, limit }`. The
 * stream discards new messages (fail secure), so nothing stored was lost, and nothing new
 * is stored until it drains or its limit is raised.
 */
export class BusStreamFullError extends BusPublishError {}
