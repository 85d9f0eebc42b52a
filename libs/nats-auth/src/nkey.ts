/**
 * NATS nkeys from the key store's raw seeds. An nkey is an Ed25519 key whose text form
 * carries its role as a prefix (O operator, A account, U user); the key store keeps the raw
 * 32-byte seed under a kind that names the role (`nats-operator`, ...), so the role is
 * decided by the kind the caller asks for, never by the bytes.
 */
import { fromSeed, Prefix, type KeyPair } from '@nats-io/nkeys';
// The seed codec is not re-exported by the package's entry point; the package has no
// "exports" map, so this file is part of its published layout (lib/codec.js, typed).
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import type { NkeyKind } from '@bulwark/keystore';

const ROLE: Readonly<Record<NkeyKind, Prefix>> = {
  'nats-operator': Prefix.Operator,
  'nats-account': Prefix.Account,
  'nats-system-account': Prefix.Account,
  'nats-user': Prefix.User,
};

/** The text seed (`SO...`, `SA...`, `SU...`) of a raw 32-byte seed in the kind's role. */
export function encodeNkeySeed(kind: NkeyKind, rawSeed: Uint8Array): Uint8Array {
  return Codec.encodeSeed(ROLE[kind], rawSeed);
}

/** The nkey pair of a raw seed; the caller clears it (`kp.clear()`) when done. */
export function nkeyPair(kind: NkeyKind, rawSeed: Uint8Array): KeyPair {
  return fromSeed(encodeNkeySeed(kind, rawSeed));
}

/** The public nkey (`O...`, `A...`, `U...`) of a raw Ed25519 public key in the kind's role. */
export function publicNkey(kind: NkeyKind, publicKey: Uint8Array): string {
  return new TextDecoder().decode(Codec.encode(ROLE[kind], publicKey));
}
