/**
 * CloudEvents 1.0 in binary content mode over NATS (the CloudEvents NATS binding: attributes as
 * `ce-` headers, the data as the message body). The body is the Detection Finding, encrypted
 * for the SOC channel; the headers are in the clear so a router can filter without the key.
 * `ce-id` equals `Nats-Msg-Id`, so JetStream dedupes a republished finding.
 */
export const CE_SOURCE = 'urn:bulwark:svc.incident-response';
export const CE_TYPE_PREFIX = 'dev.bulwark.incident.detection_finding';

export interface CloudEventAttributes {
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly time: string;
  readonly subject?: string;
}

/** ce-id = `<incident id>.<revision>` (a finding is published again on every change). */
export function cloudEventHeaders(a: CloudEventAttributes): Record<string, string> {
  return {
    'ce-specversion': '1.0',
    'ce-id': a.id,
    'ce-type': a.type,
    'ce-source': a.source,
    'ce-time': a.time,
    // The plaintext's type; the NATS body is its SecureChannel frame.
    'ce-datacontenttype': 'application/json',
    'ce-dataschema': 'https://schema.ocsf.io/1.8.0/classes/detection_finding',
    ...(a.subject === undefined ? {} : { 'ce-subject': a.subject }),
  };
}

/** Reads the required attributes back; undefined when a required one is missing or the spec version is not 1.0. */
export function readCloudEventHeaders(get: (name: string) => string | undefined): CloudEventAttributes | undefined {
  if (get('ce-specversion') !== '1.0') return undefined;
  const id = get('ce-id');
  const type = get('ce-type');
  const source = get('ce-source');
  const time = get('ce-time');
  if (!id || !type || !source || !time) return undefined;
  const subject = get('ce-subject');
  return { id, type, source, time, ...(subject ? { subject } : {}) };
}
