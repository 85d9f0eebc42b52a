/**
 * The signing worker (WorkerSigner): its own crypto provider, created by the same name as
 * the ledger's, and the ledger key, received once at start. Each request is a run of event
 * hashes; the reply is their signatures (or why there are none).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createCryptoProvider } from '@bulwark/crypto';
import { signEventHashes } from './event-signer.js';
import type { SignReply, SignRequest, WorkerInit } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('signer worker: started outside a worker thread');
const init = workerData as WorkerInit;
const crypto = createCryptoProvider(init.provider, 'ledger signer provider');
const secretKey = new Uint8Array(init.secretKey);

port.on('message', (request: SignRequest) => {
  let reply: SignReply;
  try {
    const signatures = signEventHashes(crypto, secretKey, new Uint8Array(request.hashes));
    reply = { id: request.id, signatures: signatures.buffer as ArrayBuffer };
    port.postMessage(reply, [reply.signatures]);
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
    port.postMessage(reply);
  }
});
