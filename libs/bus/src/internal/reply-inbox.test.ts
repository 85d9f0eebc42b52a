import { connect } from '@nats-io/transport-node';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboxRequestFailed, ReplyInbox, SWEEP_MS } from './reply-inbox.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const base = `test.inbox.${process.pid}.${Date.now()}`;

describe('ReplyInbox over the real NATS', () => {
  let client: NatsConnection;
  let server: NatsConnection;

  beforeAll(async () => {
    client = await connect({ servers: NATS_URL });
    server = await connect({ servers: NATS_URL });
    server.subscribe(`${base}.echo`, { callback: (_e, m) => void m.respond(new Uint8Array([...m.data, m.headers?.get('x') === 'y' ? 1 : 0])) });
    server.subscribe(`${base}.silent`, { callback: () => undefined });
    await server.flush();
  });

  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('matches concurrent replies to their requests, with and without headers', async () => {
    const inbox = new ReplyInbox(client);
    const h = headers();
    h.set('x', 'y');
    const replies = await Promise.all([1, 2, 3].map((n) => inbox.request(`${base}.echo`, new Uint8Array([n]), n === 2 ? h : undefined, 2000)));
    expect(replies.map((m) => [...m.data])).toEqual([[1, 0], [2, 1], [3, 0]]);
  });

  it('tells no responders from a timeout', async () => {
    const inbox = new ReplyInbox(client);
    await expect(inbox.request(`${base}.nobody`, new Uint8Array([1]), undefined, 2000)).rejects.toMatchObject({ reason: 'no_responders' });
    const late = inbox.request(`${base}.silent`, new Uint8Array([1]), undefined, 100);
    await expect(late).rejects.toBeInstanceOf(InboxRequestFailed);
    await expect(late).rejects.toMatchObject({ reason: 'timeout' });
  });

  it('refuses a reply that comes after the deadline, and times out again once the sweeper stopped and restarted', async () => {
    const inbox = new ReplyInbox(client);
    const blocked = inbox.request(`${base}.echo`, new Uint8Array([1]), undefined, 5);
    // The event loop is held past the deadline before anything else runs.
    const until = performance.now() + 30;
    while (performance.now() < until);
    await expect(blocked).rejects.toMatchObject({ reason: 'timeout' });
    await new Promise((resolve) => setTimeout(resolve, 5 * SWEEP_MS)); // nothing waits: the sweeper stops
    const started = performance.now();
    await expect(inbox.request(`${base}.silent`, new Uint8Array([1]), undefined, 50)).rejects.toMatchObject({ reason: 'timeout' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(50);
    expect([...(await inbox.request(`${base}.echo`, new Uint8Array([7]), undefined, 2000)).data]).toEqual([7, 0]);
  });

  it('fails waiting requests when the connection closes', async () => {
    const own = await connect({ servers: NATS_URL });
    const inbox = new ReplyInbox(own);
    const waiting = inbox.request(`${base}.silent`, new Uint8Array([1]), undefined, 5000);
    await own.close();
    await expect(waiting).rejects.toMatchObject({ reason: 'closed' });
  });
});
