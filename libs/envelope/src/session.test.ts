import { describe, expect, it } from 'vitest';
import { initiateSession, SessionResponder, type Session } from './session.js';
import { signDirectoryEntry } from './directory.js';
import { directoryOf, entryFor, principal, providers, revoke, ROOT_SEED, utf8, world } from './test-support/fixtures.js';
import { expectEveryBitFlipRefused, oneBitPerByte } from './test-support/tamper.js';
import { REPLAY_WINDOW_SIZE } from './replay-window.js';
import { Mode } from './frame.js';

const responderOpen = (session: Session, frame: Uint8Array) => session.open(frame, { deferCommit: true });

describe.each(providers.map((p) => [p.name, p] as const))('session mode (%s provider)', (name, provider) => {
  function setup() {
    const w = world(provider);
    const responder = new SessionResponder({ ...w.common, self: w.policy, instanceId: 'policy-1' });
    const handshake = () => {
      const pending = initiateSession({ ...w.common, self: w.agent, peerId: 'svc.policy' });
      const accepted = responder.accept(pending.frame);
      if (!accepted.ok) throw new Error(accepted.detail);
      const completed = pending.complete(accepted.reply);
      if (!completed.ok) throw new Error(completed.detail);
      return { pending, accepted, client: completed.session, server: accepted.session };
    };
    return { ...w, responder, handshake };
  }

  it('runs a handshake and carries requests and replies both ways', () => {
    const { handshake, responder, agent } = setup();
    const { client, server, pending } = handshake();
    expect(client.instanceId).toBe('policy-1');
    expect(client.id).toBe(pending.sessionId);
    expect(server.id).toBe(client.id);
    for (let i = 0; i < 3; i++) {
      const request = client.seal(utf8(`evaluate ${i}`));
      const received = responder.open(request);
      expect(received).toMatchObject({ ok: true, mode: Mode.session, sender: agent.id, counter: BigInt(i) });
      if (!received.ok) throw new Error(received.detail);
      expect(new TextDecoder().decode(received.plaintext)).toBe(`evaluate ${i}`);
      expect(received.session).toBe(server);
      const reply = server.seal(utf8(`decision ${i}`));
      const back = client.open(reply);
      expect(back.ok && new TextDecoder().decode(back.plaintext)).toBe(`decision ${i}`);
    }
    expect(responder.get(server.peerId, server.id)).toBe(server);
  });

  it('carries empty and large payloads', () => {
    const { handshake } = setup();
    const { client, server } = handshake();
    for (const size of [0, 1, 1024, 65536, 900_000]) {
      const payload = new Uint8Array(size).fill(size & 0xff);
      const opened = server.open(client.seal(payload));
      expect(opened.ok && Buffer.from(opened.plaintext).equals(payload)).toBe(true);
    }
    expect(() => client.seal(new Uint8Array(1024 * 1024))).toThrow(/over the 1048576-byte maximum/);
  });

  it('refuses every bit flip of a data frame, field by field', () => {
    const { handshake } = setup();
    const { client, server } = handshake();
    const frame = client.seal(utf8('payload'));
    const seen = expectEveryBitFlipRefused(frame, (f) => server.open(f), {
      version: ['E_VERSION'],
      mode: ['E_FRAME_SHAPE', 'E_MODE'],
      'sender length': ['E_FRAME_SHAPE'],
      sender: ['E_FRAME_SHAPE', 'E_UNKNOWN_SESSION'],
      'recipient length': ['E_FRAME_SHAPE'],
      recipient: ['E_FRAME_SHAPE', 'E_WRONG_RECIPIENT'],
      'session id': ['E_UNKNOWN_SESSION'],
      counter: ['E_MAC'],
      timestamp: ['E_MAC', 'E_STALE', 'E_FUTURE', 'E_FRAME_SHAPE'],
      'ciphertext length': ['E_FRAME_SHAPE'],
      ciphertext: ['E_MAC'],
      mac: ['E_MAC'],
    });
    expect([...seen.get('timestamp')!].sort()).toEqual(['E_FRAME_SHAPE', 'E_FUTURE', 'E_MAC', 'E_STALE']);
    // The untampered frame still opens: refusals did not touch the replay window.
    expect(server.open(frame).ok).toBe(true);
  });

  // Handshake flips cost X25519 work per try; the checks under test are ours, not the
  // provider's, so they run on the fast provider (both providers pass the Noise vectors).
  if (name === 'node') it('refuses every bit flip of a handshake init', () => {
    const { responder, common, agent } = setup();
    const pending = initiateSession({ ...common, self: agent, peerId: 'svc.policy' });
    expectEveryBitFlipRefused(
      pending.frame,
      (f) => responder.accept(f),
      {
        version: ['E_VERSION'],
        mode: ['E_FRAME_SHAPE', 'E_MODE'],
        'sender length': ['E_FRAME_SHAPE'],
        sender: ['E_FRAME_SHAPE', 'E_UNKNOWN_SENDER'],
        'recipient length': ['E_FRAME_SHAPE'],
        recipient: ['E_FRAME_SHAPE', 'E_WRONG_RECIPIENT'],
        'session id': ['E_HANDSHAKE'],
        counter: ['E_FRAME_SHAPE'],
        timestamp: ['E_HANDSHAKE', 'E_STALE', 'E_FUTURE', 'E_FRAME_SHAPE'],
        'ciphertext length': ['E_FRAME_SHAPE'],
        ciphertext: ['E_HANDSHAKE'],
      },
    );
    expect(responder.size).toBe(0);
    expect(responder.accept(pending.frame).ok).toBe(true);
  });

  if (name === 'node') it('refuses every bit flip of a handshake reply', () => {
    const { responder, common, agent } = setup();
    const template = initiateSession({ ...common, self: agent, peerId: 'svc.policy' });
    const firstReply = responder.accept(template.frame);
    if (!firstReply.ok) throw new Error(firstReply.detail);
    let accepted = 0;
    expectEveryBitFlipRefused(
      firstReply.reply,
      (tampered) => {
        // Each try needs its own half-open session; the tamper is replayed onto its reply.
        const pending = initiateSession({ ...common, self: agent, peerId: 'svc.policy' });
        const reply = responder.accept(pending.frame);
        if (!reply.ok) throw new Error(reply.detail);
        accepted++;
        const diff = tampered.findIndex((b, i) => b !== firstReply.reply[i]);
        const copy = reply.reply.slice();
        copy[diff] = reply.reply[diff]! ^ (tampered[diff]! ^ firstReply.reply[diff]!);
        return pending.complete(copy);
      },
      {
        version: ['E_VERSION'],
        mode: ['E_FRAME_SHAPE', 'E_MODE'],
        'sender length': ['E_FRAME_SHAPE'],
        sender: ['E_FRAME_SHAPE', 'E_UNKNOWN_SENDER'],
        'recipient length': ['E_FRAME_SHAPE'],
        recipient: ['E_FRAME_SHAPE', 'E_WRONG_RECIPIENT'],
        'session id': ['E_UNKNOWN_SESSION'],
        counter: ['E_FRAME_SHAPE'],
        timestamp: ['E_HANDSHAKE', 'E_STALE', 'E_FUTURE', 'E_FRAME_SHAPE'],
        'ciphertext length': ['E_FRAME_SHAPE'],
        ciphertext: ['E_HANDSHAKE'],
      },
      oneBitPerByte,
    );
    expect(accepted).toBeGreaterThan(100);
  }, 60_000);

  it('refuses truncated and oversized frames', () => {
    const { handshake } = setup();
    const { client, server } = handshake();
    const frame = client.seal(utf8('payload'));
    for (const length of [0, 1, 30, frame.length - 33, frame.length - 1]) {
      const result = server.open(frame.subarray(0, length));
      expect(result.ok || ['E_FRAME_SIZE', 'E_FRAME_SHAPE'].includes(result.reason)).toBe(true);
      expect(result.ok).toBe(false);
    }
    const big = new Uint8Array(1024 * 1024 + 1);
    big.set(frame);
    expect(server.open(big)).toMatchObject({ ok: false, reason: 'E_FRAME_SIZE' });
  });

  it('refuses stale and future timestamps outside the skew window', () => {
    const { handshake, clock } = setup();
    const { client, server } = handshake();
    const frame = client.seal(utf8('x'));
    clock.advance(30_001);
    expect(server.open(frame)).toMatchObject({ ok: false, reason: 'E_STALE' });
    clock.advance(-60_002);
    expect(server.open(frame)).toMatchObject({ ok: false, reason: 'E_FUTURE' });
    clock.advance(30_001);
    expect(server.open(frame).ok).toBe(true);
  });

  it('recognises a redelivered frame as a duplicate, and an ancient one as a replay', () => {
    const { handshake } = setup();
    const { client, server } = handshake();
    const first = client.seal(utf8('first'));
    expect(server.open(first).ok).toBe(true);
    expect(server.open(first)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: true });
    const deferred = client.seal(utf8('deferred'));
    const opened = responderOpen(server, deferred);
    expect(opened.ok).toBe(true);
    expect(server.open(deferred, { deferCommit: true }).ok).toBe(true);
    if (opened.ok) opened.commit();
    expect(server.open(deferred)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: true });
    const frames = Array.from({ length: REPLAY_WINDOW_SIZE + 2 }, () => client.seal(utf8('later')));
    // Out of order within the window is fine.
    expect(server.open(frames[5]!).ok).toBe(true);
    expect(server.open(frames[3]!).ok).toBe(true);
    expect(server.open(frames.at(-1)!).ok).toBe(true);
    expect(server.open(frames[4]!).ok).toBe(true); // still within the window of the last
    expect(server.open(first)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: false });
    expect(server.open(frames[0]!)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: false });
  });

  it('refuses a frame for another principal and frames of unknown sessions', () => {
    const { handshake, common, ledger, policy, responder } = setup();
    const { client } = handshake();
    const other = new SessionResponder({ ...common, self: { ...ledger }, instanceId: 'ledger-1' });
    expect(other.open(client.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    const { client: second } = handshake();
    const fresh = new SessionResponder({ ...common, self: policy, instanceId: 'policy-2' });
    expect(fresh.open(second.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SESSION' });
    expect(responder.open(second.seal(utf8('x'))).ok).toBe(true);
    // A session's frame offered to another session of the same peers.
    const { server: otherServer } = handshake();
    expect(otherServer.open(client.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SESSION' });
  });

  it('refuses a frame of one peer that names the session of another', () => {
    const { handshake, common, alice, responder } = setup();
    const { server } = handshake();
    const pending = initiateSession({ ...common, self: alice, peerId: 'svc.policy' });
    const accepted = responder.accept(pending.frame);
    const completed = accepted.ok ? pending.complete(accepted.reply) : accepted;
    if (!completed.ok) throw new Error(completed.detail);
    const frame = completed.session.seal(utf8('x'));
    // The session id follows version, mode and the two length-prefixed ids.
    frame.set(Buffer.from(server.id, 'hex'), 4 + alice.id.length + 'svc.policy'.length);
    expect(responder.open(frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SESSION', sender: alice.id });
    expect(responder.get(alice.id, server.id)).toBeUndefined();
  });

  it('refuses an initiator the directory does not know, or whose static key differs', () => {
    const { responder, common, clock, policy } = setup();
    const stranger = principal(provider, 'agent.stranger', 40);
    const strangersDirectory = directoryOf(provider, clock, [stranger, policy]);
    const pending = initiateSession({ ...common, directory: strangersDirectory, self: stranger, peerId: 'svc.policy' });
    expect(responder.accept(pending.frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    const impostor = { ...principal(provider, 'analyst.alice', 41) };
    const forged = initiateSession({ ...common, self: impostor, peerId: 'svc.policy' });
    expect(responder.accept(forged.frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
  });

  it('fails the handshake when the responder does not hold the directory key', () => {
    const { common, agent } = setup();
    const fake = new SessionResponder({ ...common, self: principal(provider, 'svc.policy', 42), instanceId: 'policy-x' });
    const pending = initiateSession({ ...common, self: agent, peerId: 'svc.policy' });
    expect(fake.accept(pending.frame)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
  });

  it('refuses a replayed handshake init and a second reply', () => {
    const { responder, common, agent } = setup();
    const pending = initiateSession({ ...common, self: agent, peerId: 'svc.policy' });
    const accepted = responder.accept(pending.frame);
    expect(accepted.ok).toBe(true);
    expect(responder.accept(pending.frame)).toMatchObject({ ok: false, reason: 'E_REPLAY' });
    if (!accepted.ok) return;
    expect(pending.complete(accepted.reply).ok).toBe(true);
    expect(pending.complete(accepted.reply)).toMatchObject({ ok: false, reason: 'E_REPLAY' });
  });

  it('stops at once when the peer is revoked', () => {
    const { handshake, directory, agent, policy } = setup();
    const { client, server } = handshake();
    const frame = client.seal(utf8('x'));
    revoke(provider, directory, agent);
    expect(server.open(frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    expect(() => server.seal(utf8('x'))).toThrow(/no longer has a valid directory entry/);
    revoke(provider, directory, policy);
    expect(() => client.seal(utf8('x'))).toThrow(/no longer has a valid directory entry/);
  });

  it("keeps a session, and accepts a handshake, under the peer's replaced key only while the directory's superseded grace lasts", () => {
    const w = world(provider);
    const old = entryFor(w.agent);
    let grace = true;
    const graced = { lookup: (id: string) => w.directory.lookup(id), superseded: (id: string) => (grace && id === w.agent.id ? old : undefined) };
    const responder = new SessionResponder({ ...w.common, directory: graced, self: w.policy, instanceId: 'policy-1' });
    const bare = new SessionResponder({ ...w.common, self: w.policy, instanceId: 'policy-2' });
    const shake = (r: SessionResponder) => {
      const pending = initiateSession({ ...w.common, self: w.agent, peerId: 'svc.policy' });
      const accepted = r.accept(pending.frame);
      const completed = accepted.ok ? pending.complete(accepted.reply) : undefined;
      return { accepted, client: completed?.ok === true ? completed.session : undefined };
    };
    const client = shake(responder).client!;
    const bareClient = shake(bare).client!;
    // The agent's rotation is served (version 2, new keys) a moment before the agent switches to it.
    expect(w.directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(principal(provider, w.agent.id, 9), { keyVersion: 2 }))).ok).toBe(true);
    expect(responder.open(client.seal(utf8('sealed before the switch')))).toMatchObject({ ok: true });
    expect(shake(responder).accepted).toMatchObject({ ok: true });
    // Without the grace the rotation ends the session, and a handshake under the old key is refused, at once.
    expect(bare.open(bareClient.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    expect(shake(bare).accepted).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    // Once the grace is over (or ended by a revocation), the old key opens nothing.
    grace = false;
    expect(responder.open(client.seal(utf8('after the grace')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    expect(shake(responder).accepted).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
  });

  it("opens a reply its peer sealed before its own rotation reached the directory only while the superseded grace lasts, and seals nothing new to the old key", () => {
    const w = world(provider);
    const old = entryFor(w.policy);
    let grace = true;
    // As KvDirectory answers: the replaced entry while its grace lasts, nothing once it ended (or the principal was revoked).
    const graced = { lookup: (id: string) => w.directory.lookup(id), superseded: (id: string) => (grace && id === w.policy.id ? old : undefined) };
    const responder = new SessionResponder({ ...w.common, directory: graced, self: w.policy, instanceId: 'policy-1' });
    const pending = initiateSession({ ...w.common, directory: graced, self: w.agent, peerId: w.policy.id });
    const accepted = responder.accept(pending.frame);
    if (!accepted.ok) throw new Error(accepted.detail);
    const completed = pending.complete(accepted.reply);
    if (!completed.ok) throw new Error(completed.detail);
    const { session: client } = completed;
    const server = accepted.session;
    expect(responder.open(client.seal(utf8('request')))).toMatchObject({ ok: true });
    const replies = [server.seal(utf8('reply 1')), server.seal(utf8('reply 2'))];
    // The responder rotates: its new entry reaches the client's directory while the replies are on the way.
    expect(w.directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(principal(provider, w.policy.id, 9), { keyVersion: 2 }))).ok).toBe(true);
    expect(client.open(replies[0]!)).toMatchObject({ ok: true });
    // Nothing new goes to the old key: the next request handshakes with the new entry.
    expect(() => client.seal(utf8('next'))).toThrow(/no longer has a valid directory entry/);
    grace = false;
    expect(client.open(replies[1]!)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
  });

  it('expires after its maximum age', () => {
    const w = world(provider);
    const responder = new SessionResponder({ ...w.common, self: w.policy, instanceId: 'policy-1', maxAgeMs: 1000 });
    const pending = initiateSession({ ...w.common, self: w.agent, peerId: 'svc.policy', maxAgeMs: 1000 });
    const accepted = responder.accept(pending.frame);
    if (!accepted.ok) throw new Error(accepted.detail);
    const done = pending.complete(accepted.reply);
    if (!done.ok) throw new Error(done.detail);
    const session: Session = done.session;
    const frame = session.seal(utf8('x'));
    w.clock.advance(1000);
    expect(session.expired).toBe(true);
    expect(() => session.seal(utf8('x'))).toThrow(/handshake again/);
    expect(accepted.session.open(frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SESSION' });
    expect(responder.prune()).toBe(1);
    expect(responder.size).toBe(0);
  });

  it(`keeps at most maxSessions (${name})`, () => {
    const w = world(provider);
    const responder = new SessionResponder({ ...w.common, self: w.policy, instanceId: 'policy-1', maxSessions: 3 });
    for (let i = 0; i < 5; i++) expect(responder.accept(initiateSession({ ...w.common, self: w.agent, peerId: 'svc.policy' }).frame).ok).toBe(true);
    expect(responder.size).toBe(3);
  });
});
