import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { notifyWebhook, verifyWebhook, webhookSignature } from './webhook.js';

const secret = new TextEncoder().encode('0123456789abcdef0123456789abcdef');
const read = (req: IncomingMessage) => new Promise<string>((resolve) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => resolve(body));
});

describe('the Critical webhook', () => {
  it('signs timestamp + body with HMAC-SHA256 and retries until the receiver accepts', async () => {
    let calls = 0;
    const verified: boolean[] = [];
    const server = createServer((req, res) => {
      void read(req).then((body) => {
        calls++;
        verified.push(verifyWebhook(secret, req.headers['x-bulwark-timestamp'] as string, req.headers['x-bulwark-signature'] as string, body, Math.floor(Date.now() / 1000)));
        res.statusCode = calls < 3 ? 503 : 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      expect(await notifyWebhook({ url, secret, backoffMs: 10 }, { incident: 'i' })).toBe('webhook answered 204 (attempt 3)');
      expect(verified).toEqual([true, true, true]);
      await expect(notifyWebhook({ url: 'http://127.0.0.1:1/none', secret, attempts: 2, backoffMs: 1 }, {})).rejects.toThrow();
    } finally {
      server.close();
    }
  });

  it('a receiver refuses a changed body, another secret and an old timestamp', () => {
    const now = 1_800_000_000;
    const sig = webhookSignature(secret, now, '{"a":1}');
    expect(verifyWebhook(secret, String(now), sig, '{"a":1}', now)).toBe(true);
    expect(verifyWebhook(secret, String(now), sig, '{"a":2}', now)).toBe(false);
    expect(verifyWebhook(new Uint8Array(32), String(now), sig, '{"a":1}', now)).toBe(false);
    expect(verifyWebhook(secret, String(now), sig, '{"a":1}', now + 301)).toBe(false);
    expect(verifyWebhook(secret, String(now + 1), sig, '{"a":1}', now)).toBe(false);
  });
});
