/**
 * SecureChannel v1 test vectors: fixed keys, ephemerals, session ids, counters and timestamps
 * in, exact frame bytes out, plus the intermediate values (handshake hash, k_enc, k_mac) an
 * independent implementation needs to find where it differs. `generate-vectors.ts` writes
 * them to vectors/*.json; src/vectors.test.ts checks the library still produces them.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { concatBytes, lengthPrefixed } from '../src/bytes.js';
import {
  ChannelReceiver,
  ChannelSender,
  encodeDirectoryEntry,
  encodeSignedDirectoryEntry,
  initiateSession,
  SealedReceiver,
  SealedSender,
  SessionResponder,
  signDirectoryEntry,
  TrustedDirectory,
  unwrapChannelEpochKey,
  wrapChannelEpochKey,
  type ChannelEpochKey,
  type DirectoryEntry,
  type OpenResult,
} from '../src/index.js';
import { HandshakeState } from '../src/noise/handshake-state.js';
import { deriveTrafficKeys, label, type TrafficKeys } from '../src/traffic.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const fill = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);

/** The provider with its randomness replaced by a script of named values, consumed in order. */
function scripted(provider: CryptoProvider, script: Uint8Array[]): CryptoProvider {
  return {
    ...provider,
    randomBytes(length: number): Uint8Array {
      const next = script.shift();
      if (next === undefined || next.length !== length) throw new Error(`vector script: wanted ${length} random bytes, had ${next?.length ?? 'none'}`);
      return next;
    },
  };
}

function done(script: Uint8Array[]): void {
  if (script.length !== 0) throw new Error(`vector script: ${script.length} random values left unused`);
}

function must(result: OpenResult): Uint8Array {
  if (!result.ok) throw new Error(`vector frame refused: ${result.reason} ${result.detail}`);
  return result.plaintext;
}

const keysJson = (keys: TrafficKeys) => ({ k_enc: hex(keys.enc), k_mac: hex(keys.mac) });

export const T0 = 1_767_225_600_000;
const ROOT_SEED = fill(32, 0x01);

interface Fixed {
  readonly id: string;
  readonly x25519Secret: Uint8Array;
  readonly ed25519Seed: Uint8Array;
}
const PRINCIPALS: readonly Fixed[] = [
  { id: 'agent.0b5c3f3e-5e0a-4d8f-9a43-2f6d8c1b7e21', x25519Secret: fill(32, 0x11), ed25519Seed: fill(32, 0x21) },
  { id: 'svc.policy', x25519Secret: fill(32, 0x12), ed25519Seed: fill(32, 0x22) },
  { id: 'svc.audit-ledger', x25519Secret: fill(32, 0x13), ed25519Seed: fill(32, 0x23) },
  { id: 'svc.key-manager', x25519Secret: fill(32, 0x14), ed25519Seed: fill(32, 0x24) },
  { id: 'analyst.alice', x25519Secret: fill(32, 0x15), ed25519Seed: fill(32, 0x25) },
];

export interface VectorSets {
  readonly directory: unknown;
  readonly session: unknown;
  readonly sealed: unknown;
  readonly channel: unknown;
}

export function buildVectorSets(provider: CryptoProvider): VectorSets {
  const identities = PRINCIPALS.map((p) => ({ id: p.id, x25519: { secretKey: p.x25519Secret, publicKey: provider.x25519.publicKey(p.x25519Secret) } }));
  const [agent, policy, ledger, keyManager, alice] = identities as [typeof identities[0], typeof identities[0], typeof identities[0], typeof identities[0], typeof identities[0]];
  let now = T0;
  const clock = () => now;
  const entries: DirectoryEntry[] = PRINCIPALS.map((p, i) => ({
    id: p.id,
    ed25519PublicKey: provider.ed25519.publicKey(p.ed25519Seed),
    x25519PublicKey: identities[i]!.x25519.publicKey,
    keyVersion: 1,
    notBefore: T0 - 86_400_000,
    notAfter: T0 + 365 * 86_400_000,
    revoked: false,
  }));
  const directory = new TrustedDirectory({ provider, rootPublicKey: provider.ed25519.publicKey(ROOT_SEED), clock });
  const signedEntries = entries.map((entry) => signDirectoryEntry(provider, ROOT_SEED, entry));
  for (const signed of signedEntries) if (!directory.put(signed).ok) throw new Error(`entry ${signed.entry.id} refused`);
  const principalsJson = identities.map((p, i) => ({
    id: p.id,
    x25519_secret: hex(p.x25519.secretKey),
    x25519_public: hex(p.x25519.publicKey),
    ed25519_seed: hex(PRINCIPALS[i]!.ed25519Seed),
    ed25519_public: hex(entries[i]!.ed25519PublicKey),
  }));

  const directoryVectors = {
    description: 'Directory entries signed by the root Ed25519 key. encoding = the canonical bytes the root signs; signed_encoding = u16 LE entry length | encoding | signature.',
    root: { ed25519_seed: hex(ROOT_SEED), ed25519_public: hex(provider.ed25519.publicKey(ROOT_SEED)) },
    entries: signedEntries.map((signed) => ({
      entry: { ...signed.entry, ed25519PublicKey: hex(signed.entry.ed25519PublicKey), x25519PublicKey: hex(signed.entry.x25519PublicKey) },
      encoding: hex(encodeDirectoryEntry(signed.entry)),
      signature: hex(signed.signature),
      signed_encoding: hex(encodeSignedDirectoryEntry(signed)),
    })),
  };

  // --- session: Noise_IK handshake, then data both ways -------------------------------------
  const sessionId = fill(16, 0xa1);
  const initiatorEphemeral = fill(32, 0xa2);
  const responderEphemeral = fill(32, 0xa3);
  const initiatorScript = [sessionId, initiatorEphemeral];
  const responderScript = [responderEphemeral];
  const common = { clock, directory };
  now = T0;
  const pending = initiateSession({ ...common, provider: scripted(provider, initiatorScript), self: agent, peerId: policy.id });
  const responder = new SessionResponder({ ...common, provider: scripted(provider, responderScript), self: policy, instanceId: 'policy-1' });
  now = T0 + 5;
  const accepted = responder.accept(pending.frame);
  if (!accepted.ok) throw new Error(accepted.detail);
  now = T0 + 9;
  const completed = pending.complete(accepted.reply);
  if (!completed.ok) throw new Error(completed.detail);
  done(initiatorScript);
  done(responderScript);
  const sessionFrames: { direction: string; counter: number; timestamp: number; payload: string; frame: string }[] = [];
  const sessionPayloads = [
    ['initiator->responder', 'evaluate read(sensitive_data)'],
    ['initiator->responder', ''],
    ['responder->initiator', 'Allow'],
  ] as const;
  const counters = new Map<string, number>();
  for (const [i, [direction, text]] of sessionPayloads.entries()) {
    now = T0 + 100 + i;
    const fromInitiator = direction === 'initiator->responder';
    const frame = (fromInitiator ? completed.session : accepted.session).seal(utf8(text));
    const plaintext = must((fromInitiator ? accepted.session : completed.session).open(frame));
    if (new TextDecoder().decode(plaintext) !== text) throw new Error('session round trip');
    const counter = counters.get(direction) ?? 0;
    counters.set(direction, counter + 1);
    sessionFrames.push({ direction, counter, timestamp: now, payload: hex(utf8(text)), frame: hex(frame) });
  }
  // Intermediate values, recomputed with the Noise state machine alone.
  const initHeaderLength = pending.frame.length - 96;
  const hsI = new HandshakeState(provider, {
    pattern: 'IK',
    initiator: true,
    prologue: concatBytes([label('session'), pending.frame.subarray(0, initHeaderLength)]),
    s: agent.x25519,
    e: { secretKey: initiatorEphemeral, publicKey: provider.x25519.publicKey(initiatorEphemeral) },
    rs: policy.x25519.publicKey,
  });
  hsI.writeMessage(new Uint8Array(0));
  // The reply frame has no mac: its body (the Noise message) ends the frame.
  hsI.readMessage(accepted.reply.subarray(accepted.reply.length - (32 + 32 + 1 + 'policy-1'.length + 16)));
  const [c1, c2] = hsI.split();
  const sessionVectors = {
    description: 'Session mode: Noise_IK_25519_ChaChaPoly_SHA256. randomBytes are consumed in order: initiator session_id (16) then initiator ephemeral (32); responder ephemeral (32).',
    initiator: agent.id,
    responder: policy.id,
    instance_id: 'policy-1',
    session_id: hex(sessionId),
    initiator_ephemeral_secret: hex(initiatorEphemeral),
    responder_ephemeral_secret: hex(responderEphemeral),
    prologue_label: 'bulwark/envelope/v1 session',
    handshake: [
      { message: 'init', timestamp: T0, frame: hex(pending.frame) },
      { message: 'reply', timestamp: T0 + 5, frame: hex(accepted.reply) },
    ],
    handshake_hash: hex(hsI.handshakeHash),
    keys: {
      'initiator->responder': keysJson(deriveTrafficKeys(provider, c1.key!, hsI.handshakeHash, label('session keys'))),
      'responder->initiator': keysJson(deriveTrafficKeys(provider, c2.key!, hsI.handshakeHash, label('session keys'))),
    },
    frames: sessionFrames,
  };

  // --- sealed: Noise_K one-way, ephemeral in the header ---------------------------------------
  const sealedSessionId = fill(16, 0xb1);
  const sealedEphemeral = fill(32, 0xb2);
  const sealedScript = [sealedSessionId, sealedEphemeral];
  const sealedSender = new SealedSender({ ...common, provider: scripted(provider, sealedScript), self: agent, recipientId: ledger.id });
  const sealedReceiver = new SealedReceiver({ ...common, provider, self: ledger });
  const sealedFrames = ['{"event_type":"policy_decision"}', '{"event_type":"tool_invocation"}', 'x'].map((text, i) => {
    now = T0 + 200 + i * 1000;
    const frame = sealedSender.seal(utf8(text));
    must(sealedReceiver.open(frame));
    return { counter: i, timestamp: now, payload: hex(utf8(text)), frame: hex(frame) };
  });
  done(sealedScript);
  const hsK = new HandshakeState(provider, {
    pattern: 'K',
    initiator: true,
    prologue: concatBytes([label('sealed'), lengthPrefixed(utf8(agent.id)), lengthPrefixed(utf8(ledger.id)), sealedSessionId]),
    s: agent.x25519,
    e: { secretKey: sealedEphemeral, publicKey: provider.x25519.publicKey(sealedEphemeral) },
    rs: ledger.x25519.publicKey,
  });
  const sealedHandshake = hsK.writeMessage(new Uint8Array(0));
  const sealedVectors = {
    description: 'Sealed mode: Noise_K_25519_ChaChaPoly_SHA256 with an empty payload; the 48-byte handshake message rides in every header. randomBytes: session_id (16) then ephemeral (32).',
    sender: agent.id,
    recipient: ledger.id,
    session_id: hex(sealedSessionId),
    ephemeral_secret: hex(sealedEphemeral),
    prologue: hex(concatBytes([label('sealed'), lengthPrefixed(utf8(agent.id)), lengthPrefixed(utf8(ledger.id)), sealedSessionId])),
    handshake_message: hex(sealedHandshake),
    handshake_hash: hex(hsK.handshakeHash),
    keys: keysJson(deriveTrafficKeys(provider, hsK.split()[0].key!, hsK.handshakeHash, label('sealed keys'))),
    frames: sealedFrames,
  };

  // --- channel: an epoch key wrapped to a subscriber, then channel frames --------------------
  const epochKey: ChannelEpochKey = { channelId: 'soc.incidents', epoch: 3, key: fill(32, 0xc1) };
  const wrapSessionId = fill(16, 0xc2);
  const wrapEphemeral = fill(32, 0xc3);
  const streamId = fill(8, 0xc4);
  const wrapScript = [wrapSessionId, wrapEphemeral];
  now = T0 + 300;
  const wrapped = wrapChannelEpochKey(new SealedSender({ ...common, provider: scripted(provider, wrapScript), self: keyManager, recipientId: alice.id }), epochKey);
  done(wrapScript);
  const unwrapped = unwrapChannelEpochKey(new SealedReceiver({ ...common, provider, self: alice }), wrapped, keyManager.id);
  if (!unwrapped.ok) throw new Error(unwrapped.detail);
  const streamScript = [streamId];
  const publisher = new ChannelSender({ ...common, provider: scripted(provider, streamScript), senderId: policy.id, epochKey });
  const subscriber = new ChannelReceiver({ ...common, provider, channelId: epochKey.channelId });
  subscriber.install(unwrapped.epochKey);
  const channelFrames = ['incident 1: policy violation', 'incident 2: sandbox escape suspected'].map((text, i) => {
    now = T0 + 400 + i;
    const frame = publisher.seal(utf8(text));
    must(subscriber.open(frame));
    return { counter: i, timestamp: now, payload: hex(utf8(text)), frame: hex(frame) };
  });
  done(streamScript);
  const channelSessionId = concatBytes([Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 0), streamId]);
  const channelVectors = {
    description:
      'Channel mode: epoch key wrapped as a sealed frame (key-manager -> subscriber), then frames under k = HKDF(epoch key, salt = session id, info = label || sender || channel). Session id = epoch u64 LE || stream id.',
    channel_id: epochKey.channelId,
    epoch: epochKey.epoch,
    epoch_key: hex(epochKey.key),
    wrap: {
      issuer: keyManager.id,
      subscriber: alice.id,
      session_id: hex(wrapSessionId),
      ephemeral_secret: hex(wrapEphemeral),
      timestamp: T0 + 300,
      frame: hex(wrapped),
    },
    publisher: policy.id,
    stream_id: hex(streamId),
    session_id: hex(channelSessionId),
    keys: keysJson(
      deriveTrafficKeys(provider, epochKey.key, channelSessionId, concatBytes([label('channel keys'), lengthPrefixed(utf8(policy.id)), lengthPrefixed(utf8(epochKey.channelId))])),
    ),
    frames: channelFrames,
  };

  const common_ = { format: 'bulwark SecureChannel v1', generated_by: 'libs/envelope/scripts/generate-vectors.ts', principals: principalsJson };
  return {
    directory: { ...common_, ...directoryVectors },
    session: { ...common_, ...sessionVectors },
    sealed: { ...common_, ...sealedVectors },
    channel: { ...common_, ...channelVectors },
  };
}

export { unhex };
