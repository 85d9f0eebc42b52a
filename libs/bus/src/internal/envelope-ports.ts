/**
 * Adapters from @bulwark/envelope objects to the bus's internal ports. This is the only
 * way the public API builds ports, so every payload on the wire went through the envelope.
 */
import { createHash } from 'node:crypto';
import {
  initiateSession,
  type ChannelSender,
  type OpenResult,
  type Rejection,
  type StreamReceiver,
  type SealedSender,
  type SessionInitiatorOptions,
  type SessionResponder,
} from '@bulwark/envelope';
import type { FrameMeta, Opened, OpenedMessage, SessionInitiator, SessionResponderPort, StreamOpener, StreamSealer } from './frames.js';

export function sealerOf(sender: SealedSender | ChannelSender): StreamSealer {
  return { seal: async (plaintext) => sender.seal(plaintext) };
}

/**
 * The envelope records a counter in its replay window as it opens the frame. A durable
 * consumer must commit only after its handler succeeded, or a frame whose handler failed
 * would be taken for a duplicate when JetStream redelivers it, and lost. So frames opened
 * but not yet committed are kept here (by digest: a redelivery is byte-identical) and a
 * "duplicate" that is still pending is handed to the handler again.
 *
 * `capacity` bounds the memory; it must be at least the consumer's max_ack_pending, since
 * JetStream never has more unacknowledged messages outstanding than that.
 */
export function twoPhaseOpener(open: (frame: Uint8Array) => OpenResult, capacity: number): StreamOpener {
  const pending = new Map<string, { plaintext: Uint8Array; meta: FrameMeta }>();
  const accepted = (key: string, plaintext: Uint8Array, meta: FrameMeta): Opened => ({
    kind: 'accepted',
    plaintext,
    meta,
    commit: () => void pending.delete(key),
    abandon: () => void pending.delete(key),
  });
  return {
    async open(frame) {
      const result = open(frame);
      if (result.ok) {
        const key = digest(frame);
        const meta = { sender: result.sender, sessionId: result.sessionId, counter: result.counter };
        pending.set(key, { plaintext: result.plaintext, meta });
        while (pending.size > capacity) {
          const oldest = pending.keys().next();
          if (oldest.done) break;
          pending.delete(oldest.value);
        }
        return accepted(key, result.plaintext, meta);
      }
      // An authentic frame the window refuses (seen, or older than the window) may be the
      // redelivery of one whose handler has not succeeded yet: many later frames can be
      // accepted meanwhile and slide the window past it, and it must still reach the handler.
      if (result.reason === 'E_REPLAY') {
        const key = digest(frame);
        const held = pending.get(key);
        if (held !== undefined) return accepted(key, held.plaintext, held.meta);
        if (result.duplicate) return { kind: 'duplicate', sender: result.sender };
      }
      return { kind: 'rejected', reason: result.reason, sender: result.sender };
    },
  };
}

export function openerOf(receiver: StreamReceiver, capacity: number): StreamOpener {
  return twoPhaseOpener((frame) => receiver.open(frame), capacity);
}

/** A rejected or duplicate session frame, as the bus reports it. */
function refused(result: Rejection): Exclude<OpenedMessage, { kind: 'accepted' }> {
  return result.duplicate ? { kind: 'duplicate', sender: result.sender } : { kind: 'rejected', reason: result.reason, sender: result.sender };
}

export function responderPort(responder: SessionResponder): SessionResponderPort {
  return {
    async accept(message) {
      const r = responder.accept(message);
      if (!r.ok) return { kind: 'rejected', reason: r.reason, sender: r.sender };
      return { kind: 'established', reply: r.reply, meta: { sender: r.session.peerId, sessionId: r.session.id, counter: 0n } };
    },
    open(frame) {
      const result = responder.open(frame);
      if (!result.ok) return refused(result);
      const { session } = result;
      return {
        kind: 'accepted',
        plaintext: result.plaintext,
        sender: result.sender,
        sessionId: result.sessionId,
        // The session object outlives a prune of the responder's table; sealing in an expired one throws.
        sealReply: (plaintext) => session.seal(plaintext),
      };
    },
    prune: () => void responder.prune(),
  };
}

export function initiatorPort(options: SessionInitiatorOptions): SessionInitiator {
  return {
    async begin() {
      const pending = initiateSession(options);
      return {
        message: pending.frame,
        async finish(reply) {
          const r = pending.complete(reply);
          if (!r.ok) return { kind: 'rejected', reason: r.reason, sender: r.sender };
          const s = r.session;
          return {
            kind: 'established',
            instanceId: s.instanceId,
            session: {
              sessionId: s.id,
              get expired() {
                return s.expired;
              },
              seal: (plaintext) => s.seal(plaintext),
              open: (frame) => {
                const result = s.open(frame);
                return result.ok ? { kind: 'accepted', plaintext: result.plaintext, sender: result.sender } : refused(result);
              },
            },
          };
        },
      };
    },
  };
}

function digest(frame: Uint8Array): string {
  return createHash('sha256').update(frame).digest('hex');
}
