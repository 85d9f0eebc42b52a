/** Messages between WorkerSigner and its workers (buffers are transferred, not copied). */
export interface WorkerInit {
  /** The ledger's crypto provider name: the worker creates its own. */
  readonly provider: string;
  /** The ledger key's 32-byte seed. */
  readonly secretKey: ArrayBuffer;
}

export interface SignRequest {
  readonly id: number;
  /** n event hashes, 32 bytes each. */
  readonly hashes: ArrayBuffer;
}

export type SignReply = { readonly id: number; readonly signatures: ArrayBuffer } | { readonly id: number; readonly error: string };
