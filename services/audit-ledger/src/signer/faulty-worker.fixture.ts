/**
 * A signing worker that misbehaves on demand, for the WorkerSigner and service tests. It
 * signs like worker.ts, except when a token file is in $LEDGER_SIGNER_FAULT_DIR: `crash`
 * (consumed by the first request that sees it: the thread dies mid-request), `hang` (no
 * answer), `garbage` (signatures that do not verify).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { createCryptoProvider } from '@bulwark/crypto';
import { signEventHashes } from './event-signer.js';
import type { SignReply, SignRequest, WorkerInit } from './protocol.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const crypto = createCryptoProvider(init.provider);
const secretKey = new Uint8Array(init.secretKey);
const dir = process.env['LEDGER_SIGNER_FAULT_DIR'] ?? '';

/** True once per token file, across threads (removing it is the claim). */
function claim(name: string): boolean {
  try {
    rmSync(join(dir, name));
    return true;
  } catch {
    return false;
  }
}

port.on('message', (request: SignRequest) => {
  if (claim('crash')) process.exit(70);
  if (existsSync(join(dir, 'hang'))) return;
  const signatures = signEventHashes(crypto, secretKey, new Uint8Array(request.hashes));
  if (existsSync(join(dir, 'garbage'))) signatures.fill(7);
  const reply: SignReply = { id: request.id, signatures: signatures.buffer as ArrayBuffer };
  port.postMessage(reply, [reply.signatures]);
});
