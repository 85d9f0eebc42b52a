/**
 * An epoch key wrapped to one subscriber: an authenticated sealed box, the one-way pattern of
 * Noise K (`es` + `ss`) without a transport, because a wrap is kept in the ledger and opened
 * long after it was written (no timestamp window, no replay window: the announcement's place in
 * the verified ledger chain is its freshness).
 *
 *   e        = a fresh X25519 key pair per wrap
 *   binding  = tag | channel | epoch u64 | recipient | recipient key version u32
 *              | issuer | issuer key version u32 | e.pub | recipient X25519 pub | issuer X25519 pub
 *   k        = HKDF-SHA256(ikm = DH(e, R) || DH(S, R), salt = empty, info = binding)   (RFC 5869)
 *   wrap     = 0x01 | e.pub (32) | ChaCha20-Poly1305(k, nonce = 0^12, ad = binding, epoch key) (48)
 *
 * `es` makes every wrap's key fresh (so the fixed nonce never repeats under one key); `ss`
 * authenticates the issuer: only the holder of S (the key manager) can make a wrap that opens.
 * Every field of the binding is both KDF input and AEAD associated data, so a wrap moved to
 * another channel, epoch or recipient, or claimed for another issuer, does not open.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { isValidId } from '@bulwark/envelope';
import { ChannelError } from './errors.js';

export const EPOCH_KEY_LENGTH = 32;
const WRAP_VERSION = 1;
const KEY_LENGTH = 32;
const TAG_LENGTH = 16;
export const WRAP_LENGTH = 1 + KEY_LENGTH + EPOCH_KEY_LENGTH + TAG_LENGTH;
const ZERO_NONCE = new Uint8Array(12);
const TAG = new TextEncoder().encode('bulwark/channel/v1 epoch-key wrap');

/** Who a wrap is for and under which key of the issuer: everything here is bound into the wrap. */
export interface WrapBinding {
  readonly channel: string;
  readonly epoch: number;
  readonly recipient: string;
  readonly recipientKeyVersion: number;
  readonly recipientPublicKey: Uint8Array;
  readonly issuer: string;
  readonly issuerKeyVersion: number;
  readonly issuerPublicKey: Uint8Array;
}

function bindingBytes(b: WrapBinding, ephemeral: Uint8Array): Uint8Array {
  for (const [name, id] of [
    ['channel', b.channel],
    ['recipient', b.recipient],
    ['issuer', b.issuer],
  ] as const) {
    if (!isValidId(id)) throw new ChannelError('E_CHANNEL_WRAP', `channel wrap: ${name} '${id.slice(0, 40)}' is not a valid id`, { field: name });
  }
  for (const [name, key] of [
    ['recipient public key', b.recipientPublicKey],
    ['issuer public key', b.issuerPublicKey],
    ['ephemeral key', ephemeral],
  ] as const) {
    if (key.length !== KEY_LENGTH) throw new ChannelError('E_CHANNEL_WRAP', `channel wrap: the ${name} is ${key.length} bytes, not ${KEY_LENGTH}`, { field: name });
  }
  if (!Number.isSafeInteger(b.epoch) || b.epoch < 0) throw new ChannelError('E_CHANNEL_WRAP', `channel wrap: epoch ${b.epoch} is not a non-negative integer`, {});
  const ids = [b.channel, b.recipient, b.issuer].map((id) => new TextEncoder().encode(id));
  const out = new Uint8Array(1 + TAG.length + 3 + ids.reduce((n, id) => n + id.length, 0) + 8 + 4 + 4 + 3 * KEY_LENGTH);
  const view = new DataView(out.buffer);
  let at = 0;
  const put = (bytes: Uint8Array, prefixed: boolean): void => {
    if (prefixed) out[at++] = bytes.length;
    out.set(bytes, at);
    at += bytes.length;
  };
  put(TAG, true);
  put(ids[0]!, true);
  view.setBigUint64(at, BigInt(b.epoch), true);
  at += 8;
  put(ids[1]!, true);
  view.setUint32(at, version(b.recipientKeyVersion, 'recipient'), true);
  at += 4;
  put(ids[2]!, true);
  view.setUint32(at, version(b.issuerKeyVersion, 'issuer'), true);
  at += 4;
  put(ephemeral, false);
  put(b.recipientPublicKey, false);
  put(b.issuerPublicKey, false);
  return out;
}

function version(v: number, who: string): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > 0xffffffff) throw new ChannelError('E_CHANNEL_WRAP', `channel wrap: the ${who} key version ${v} is not an integer in [1, 2^32)`, {});
  return v;
}

function wrapKey(provider: CryptoProvider, es: Uint8Array, ss: Uint8Array, binding: Uint8Array): Uint8Array {
  const ikm = new Uint8Array(2 * KEY_LENGTH);
  ikm.set(es, 0);
  ikm.set(ss, KEY_LENGTH);
  const key = provider.hkdfSha256(ikm, new Uint8Array(0), binding, KEY_LENGTH);
  ikm.fill(0);
  es.fill(0);
  ss.fill(0);
  return key;
}

/** The issuer's side: wraps `epochKey` to the recipient's X25519 public key. */
export function wrapEpochKey(provider: CryptoProvider, binding: WrapBinding, issuerSecretKey: Uint8Array, epochKey: Uint8Array): Uint8Array {
  if (epochKey.length !== EPOCH_KEY_LENGTH) throw new ChannelError('E_CHANNEL_WRAP', `channel wrap: the epoch key is ${epochKey.length} bytes, not ${EPOCH_KEY_LENGTH}`, {});
  const e = provider.x25519.generateKeyPair();
  try {
    const ad = bindingBytes(binding, e.publicKey);
    const key = wrapKey(provider, provider.x25519.sharedSecret(e.secretKey, binding.recipientPublicKey), provider.x25519.sharedSecret(issuerSecretKey, binding.recipientPublicKey), ad);
    const sealed = provider.chacha20poly1305.seal(key, ZERO_NONCE, epochKey, ad);
    key.fill(0);
    const out = new Uint8Array(WRAP_LENGTH);
    out[0] = WRAP_VERSION;
    out.set(e.publicKey, 1);
    out.set(sealed, 1 + KEY_LENGTH);
    return out;
  } finally {
    e.secretKey.fill(0);
  }
}

/**
 * The recipient's side: the epoch key, or E_CHANNEL_WRAP when the wrap was not made by the
 * issuer's key for exactly this binding (or was changed on the way). `binding.recipientPublicKey`
 * must be the public key of `recipientSecretKey` (it is recomputed here, not trusted).
 */
export function unwrapEpochKey(provider: CryptoProvider, binding: Omit<WrapBinding, 'recipientPublicKey'>, recipientSecretKey: Uint8Array, wrap: Uint8Array): Uint8Array {
  const where = { channel: binding.channel, epoch: binding.epoch, recipient: binding.recipient };
  if (wrap.length !== WRAP_LENGTH || wrap[0] !== WRAP_VERSION) {
    throw new ChannelError('E_CHANNEL_WRAP', `channel wrap for ${binding.recipient} on ${binding.channel} epoch ${binding.epoch}: ${wrap.length} bytes (version ${wrap[0] ?? 'none'}), expected ${WRAP_LENGTH} bytes of version ${WRAP_VERSION}`, where);
  }
  const ephemeral = wrap.subarray(1, 1 + KEY_LENGTH);
  const full: WrapBinding = { ...binding, recipientPublicKey: provider.x25519.publicKey(recipientSecretKey) };
  const ad = bindingBytes(full, ephemeral);
  let key: Uint8Array;
  try {
    key = wrapKey(provider, provider.x25519.sharedSecret(recipientSecretKey, ephemeral), provider.x25519.sharedSecret(recipientSecretKey, binding.issuerPublicKey), ad);
  } catch (cause) {
    throw new ChannelError('E_CHANNEL_WRAP', `channel wrap for ${binding.recipient} on ${binding.channel} epoch ${binding.epoch}: a public key is of low order`, where, { cause });
  }
  try {
    return provider.chacha20poly1305.open(key, ZERO_NONCE, wrap.subarray(1 + KEY_LENGTH), ad);
  } catch (cause) {
    throw new ChannelError('E_CHANNEL_WRAP', `channel wrap for ${binding.recipient} on ${binding.channel} epoch ${binding.epoch} does not open: not made by ${binding.issuer} for this recipient, channel and epoch, or changed`, where, { cause });
  } finally {
    key.fill(0);
  }
}
