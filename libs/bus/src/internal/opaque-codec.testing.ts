// A test-only frame codec behind the bus's internal ports, so the NATS mechanics can be
// tested on their own: HMAC-authenticated (not encrypted) frames with a per-session
// counter and a committed-counter set. Production code builds the ports from
// @bulwark/envelope only.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { InitiatorSession, Opened, SessionInitiator, SessionResponder, StreamOpener, StreamSealer } from './frames.js';

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

/**
 * Test-only sessions over the same HMAC frames: the handshake names the initiator and a
 * session id; each responder keeps its own session table, so a session established
 * with one instance is unknown to another (as with real Noise sessions).
 */
export class OpaqueSessions {
  readonly codec = new OpaqueCodec();

  initiator(self: string): SessionInitiator {
    const codec = this.codec;
    return {
      async begin() {
        const sessionId = randomBytes(8).toString('hex');
        const sealer = codec.sealer(self, sessionId);
        const message = await sealer.seal(enc.encode('hello'));
        return {
          message,
          async finish(reply: Uint8Array) {
            const opened = await codec.opener().open(reply);
            if (opened.kind !== 'accepted') return { kind: 'rejected', reason: opened.kind === 'rejected' ? opened.reason : 'E_REPLAY' } as const;
            const opener = codec.opener();
            const session: InitiatorSession = { sessionId, seal: (p) => sealer.seal(p), open: (f) => opener.open(f) };
            return { kind: 'established', session, payload: opened.plaintext } as const;
          },
        };
      },
    };
  }

  responder(self: string): SessionResponder & { sessions: Map<string, unknown> } {
    const codec = this.codec;
    const sessions = new Map<string, { sealer: ReturnType<OpaqueCodec['sealer']>; opener: ReturnType<OpaqueCodec['opener']> }>();
    const handshakes = codec.opener();
    return {
      sessions,
      async accept(message, payload) {
        const opened = await handshakes.open(message);
        if (opened.kind !== 'accepted') return { kind: 'rejected', reason: opened.kind === 'rejected' ? opened.reason : 'E_REPLAY' };
        opened.commit();
        const sealer = codec.sealer(self, opened.meta.sessionId);
        sessions.set(opened.meta.sessionId, { sealer, opener: codec.opener() });
        return { kind: 'established', reply: await sealer.seal(payload), meta: opened.meta };
      },
      async open(frame) {
        const peek = await codec.opener().open(frame);
        if (peek.kind === 'rejected') return peek;
        const s = sessions.get(peek.meta.sessionId);
        if (s === undefined) return { kind: 'rejected', reason: 'E_UNKNOWN_SESSION', sender: peek.meta.sender };
        return s.opener.open(frame);
      },
      async seal(sessionId, plaintext) {
        const s = sessions.get(sessionId);
        if (s === undefined) throw new Error(`no session ${sessionId}`);
        return s.sealer.seal(plaintext);
      },
    };
  }
}
