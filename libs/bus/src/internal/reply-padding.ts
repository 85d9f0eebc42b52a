/**
 * Reply size buckets (DESIGN §3a: "Replies are padded to size buckets so that their length
 * does not tell the decision"). A reply plaintext is padded to the smallest bucket that holds
 * it:
 *
 *   512, 1 KiB, 2 KiB, 4 KiB, … (powers of two), and last the largest plaintext the reply
 *   frame can carry (`maxReplyPlaintext`).
 *
 * The smallest bucket is 512 bytes, not 256: the policy service's decisions on the seed's
 * policies are 150–380 bytes of reply plaintext (an Allow about 155, a conditional allow or an
 * approval 250–380), so with a 256-byte bucket an Allow could still be told from the others.
 * A reply larger than the frame can carry is not padded (sealing it fails, as before).
 *
 * Within a bucket, every reply of one session has the same frame length: the frame adds a
 * fixed header (its ids) and the 16-byte tag and 32-byte mac. What a bucket still tells is
 * the order of magnitude (a Deny with long diagnostics may land in the next bucket).
 */
import { DEFAULT_MAX_FRAME_SIZE } from '@bulwark/envelope';

export const MIN_REPLY_BUCKET = 512;

/**
 * A session frame's bytes besides its plaintext: version, mode, two id lengths, session id
 * (16), counter (8), timestamp (8), ciphertext length (4) = 40, the ids, then tag (16) and
 * mac (32). See libs/envelope README "Frame layout".
 */
export function sessionFrameOverhead(senderId: string, recipientId: string): number {
  return 40 + senderId.length + recipientId.length + 16 + 32;
}

/** The largest reply plaintext a frame from `senderId` to `recipientId` can carry. */
export function maxReplyPlaintext(senderId: string, recipientId: string, maxFrameSize = DEFAULT_MAX_FRAME_SIZE): number {
  return maxFrameSize - sessionFrameOverhead(senderId, recipientId);
}

/** The bucket a `length`-byte reply plaintext is padded to (never less than `length`). */
export function paddedReplyLength(length: number, maxLength: number): number {
  if (length > maxLength) return length;
  let bucket = MIN_REPLY_BUCKET;
  while (bucket < length) bucket *= 2;
  return Math.min(bucket, maxLength);
}
