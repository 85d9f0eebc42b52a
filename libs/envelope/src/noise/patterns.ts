/**
 * The handshake patterns Bulwark uses (IK for sessions, K for sealed streams) and the ones
 * the public vectors cover besides (N, X, NN, XX), as written in Noise §7.4 and §7.5.
 */
export type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss';
export type PatternName = 'N' | 'K' | 'X' | 'NN' | 'XX' | 'IK';

export interface HandshakePattern {
  /** Pre-message tokens known in advance: the initiator's (`-> ...`) then the responder's (`<- ...`). */
  readonly initiatorPre: readonly ('e' | 's')[];
  readonly responderPre: readonly ('e' | 's')[];
  /** Message patterns; message i is sent by the initiator when i is even. */
  readonly messages: readonly (readonly Token[])[];
}

export const PATTERNS: Readonly<Record<PatternName, HandshakePattern>> = {
  N: { initiatorPre: [], responderPre: ['s'], messages: [['e', 'es']] },
  K: { initiatorPre: ['s'], responderPre: ['s'], messages: [['e', 'es', 'ss']] },
  X: { initiatorPre: [], responderPre: ['s'], messages: [['e', 'es', 's', 'ss']] },
  NN: { initiatorPre: [], responderPre: [], messages: [['e'], ['e', 'ee']] },
  XX: { initiatorPre: [], responderPre: [], messages: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']] },
  IK: { initiatorPre: [], responderPre: ['s'], messages: [['e', 'es', 's', 'ss'], ['e', 'ee', 'se']] },
};

export function protocolName(pattern: PatternName): string {
  return `Noise_${pattern}_25519_ChaChaPoly_SHA256`;
}
