// A TCP relay in front of nats-server that forwards the NATS client protocol both ways as it is,
// except one reply: the server's delivery to the reply subject of the first request a client
// publishes on a subject matching `match` (a lost reply: the responder ran the request, the
// requester never hears). The payloads are sealed; the relay reads only the protocol's framing
// (PUB/HPUB from the client, MSG/HMSG from the server), so it can drop, never forge.
import { createServer, connect as tcpConnect, type Socket } from 'node:net';

export interface ReplyDropper {
  /** `nats://127.0.0.1:<port>`: give it to the process whose reply is to be lost. */
  readonly url: string;
  /** The request subjects whose reply was dropped. */
  readonly dropped: string[];
  close(): Promise<void>;
}

type Frame = { readonly bytes: Buffer; readonly op: string; readonly subject?: string; readonly reply?: string };

/** Splits complete protocol frames off `buf`; returns them and the rest. */
function frames(buf: Buffer): { done: Frame[]; rest: Buffer } {
  const done: Frame[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) break;
    const parts = buf.subarray(at, eol).toString('latin1').split(/\s+/).filter((p) => p !== '');
    const op = (parts[0] ?? '').toUpperCase();
    let end = eol + 2;
    let subject: string | undefined;
    let reply: string | undefined;
    if (op === 'PUB' || op === 'HPUB' || op === 'MSG' || op === 'HMSG') {
      // PUB subj [reply] n | HPUB subj [reply] h n | MSG subj sid [reply] n | HMSG subj sid [reply] h n
      const fixed = (op === 'PUB' ? 3 : op === 'HPUB' ? 4 : op === 'MSG' ? 4 : 5);
      const hasReply = parts.length > fixed;
      subject = parts[1];
      reply = hasReply ? parts[op.endsWith('MSG') ? 3 : 2] : undefined;
      end = eol + 2 + Number(parts[parts.length - 1]) + 2;
      if (end > buf.length) break;
    }
    done.push({ bytes: buf.subarray(at, end), op, ...(subject === undefined ? {} : { subject }), ...(reply === undefined ? {} : { reply }) });
    at = end;
  }
  return { done, rest: buf.subarray(at) };
}

export async function startReplyDropper(upstream: string, match: RegExp): Promise<ReplyDropper> {
  const target = new URL(upstream);
  const dropped: string[] = [];
  let armed = true;
  const lose = new Map<string, string>(); // reply subject -> request subject
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = tcpConnect(Number(target.port), target.hostname);
    sockets.add(client).add(up);
    let fromClient: Buffer = Buffer.alloc(0);
    let fromServer: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      const { done, rest } = frames(Buffer.concat([fromClient, chunk]));
      fromClient = rest;
      for (const f of done) {
        if (armed && (f.op === 'PUB' || f.op === 'HPUB') && f.reply !== undefined && match.test(f.subject ?? '')) {
          armed = false;
          lose.set(f.reply, f.subject!);
        }
        up.write(f.bytes);
      }
    });
    up.on('data', (chunk: Buffer) => {
      const { done, rest } = frames(Buffer.concat([fromServer, chunk]));
      fromServer = rest;
      for (const f of done) {
        const request = f.subject === undefined ? undefined : lose.get(f.subject);
        if ((f.op === 'MSG' || f.op === 'HMSG') && request !== undefined) {
          lose.delete(f.subject!);
          dropped.push(request);
          continue;
        }
        client.write(f.bytes);
      }
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('reply dropper: no port');
  return {
    url: `nats://127.0.0.1:${address.port}`,
    dropped,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
