/**
 * The Critical notification (S7.3 "notify leadership and external response"): a POST of the
 * finding, signed with HMAC-SHA256 over `<timestamp>.<body>` (the receiver recomputes it with
 * the shared secret and refuses a timestamp older than its tolerance, so a captured request
 * cannot be replayed later). Headers: `X-Bulwark-Timestamp` (Unix seconds),
 * `X-Bulwark-Signature: v1=<hex>`. Retried with backoff; the last failure is thrown.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { BulwarkError } from '@bulwark/errors';

export interface WebhookOptions {
  readonly url: string;
  readonly secret: Uint8Array;
  readonly attempts?: number;
  readonly backoffMs?: number;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export function webhookSignature(secret: Uint8Array, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver does: the signature matches and the timestamp is within `toleranceS` of now. */
export function verifyWebhook(secret: Uint8Array, timestamp: string | undefined, signature: string | undefined, body: string, nowS: number, toleranceS = 300): boolean {
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) return false;
  const want = Buffer.from(webhookSignature(secret, Number(timestamp), body));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

export async function notifyWebhook(options: WebhookOptions, payload: unknown): Promise<string> {
  const body = JSON.stringify(payload);
  const attempts = options.attempts ?? 4;
  const doFetch = options.fetch ?? fetch;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await doFetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-bulwark-timestamp': String(timestamp), 'x-bulwark-signature': webhookSignature(options.secret, timestamp, body) },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
      if (res.ok) return `webhook answered ${res.status} (attempt ${attempt})`;
      last = new BulwarkError('E_INCIDENT_WEBHOOK', `webhook answered ${res.status}`, { status: res.status });
    } catch (e) {
      last = e;
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, (options.backoffMs ?? 500) * 2 ** (attempt - 1)));
  }
  throw last instanceof Error ? last : new BulwarkError('E_INCIDENT_WEBHOOK', String(last), {});
}
