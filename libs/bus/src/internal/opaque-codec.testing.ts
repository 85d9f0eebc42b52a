// A test-only frame codec behind the bus's internal ports, so the NATS mechanics can be
// tested on their own: HMAC-authenticated (not encrypted) frames with a per-session
// counter and a committed-counter set. Production code builds the ports from
// @bulwark/envelope only.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Opened, StreamOpener, StreamSealer } from './frames.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export class OpaqueCodec {
  constructor(readonly key: Uint8Array = randomBytes(32)) {}

  sealer(sender: string, sessionId = randomBytes(8).toString('hex')): StreamSealer & { counter: bigint; sealAt(counter: bigint, p: Uint8Array): Uint8Array } {
    const key = this.key;
    const sealAt = (counter: bigint, plaintext: Uint8Array): Uint8Array => {
      const head = enc.encode(JSON.stringify({ sender, sessionId, counter: counter.toString() }));
      const body = Buffer.concat([Buffer.from([head.length >> 8, head.length & 0xff]), head, plaintext]);
      const mac = createHmac('sha256', key).update(body).digest();
      return Buffer.concat([body, mac]);
    };
    const s = {
      counter: 0n,
      async seal(plaintext: Uint8Array) {
        s.counter += 1n;
        return sealAt(s.counter, plaintext);
      },
      sealAt,
    };
    return s;
  }

  opener(): StreamOpener & { committed: Set<string> } {
    const key = this.key;
    const committed = new Set<string>();
    return {
      committed,
      async open(frame: Uint8Array): Promise<Opened> {
        const f = Buffer.from(frame);
        if (f.length < 2 + 32) return { kind: 'rejected', reason: 'E_FRAME_SIZE' };
        const body = f.subarray(0, f.length - 32);
        const mac = f.subarray(f.length - 32);
        const headLen = (body[0]! << 8) | body[1]!;
        let head: { sender: string; sessionId: string; counter: string };
        try {
          head = JSON.parse(dec.decode(body.subarray(2, 2 + headLen))) as typeof head;
        } catch {
          return { kind: 'rejected', reason: 'E_FRAME_SHAPE' };
        }
        if (!timingSafeEqual(createHmac('sha256', key).update(body).digest(), mac)) {
          return { kind: 'rejected', reason: 'E_MAC', sender: head.sender };
        }
        const meta = { sender: head.sender, sessionId: head.sessionId, counter: BigInt(head.counter) };
        const id = `${meta.sessionId}/${meta.counter}`;
        if (committed.has(id)) return { kind: 'duplicate', meta };
        return { kind: 'accepted', plaintext: body.subarray(2 + headLen), meta, commit: () => void committed.add(id) };
      },
    };
  }
}
