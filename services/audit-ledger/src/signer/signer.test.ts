import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { InThreadSigner, signEventHashes } from './event-signer.js';
import { WorkerSigner } from './worker-signer.js';

const crypto = createCryptoProvider('node');
const key = crypto.ed25519.generateKeyPair();
const hashes = (n: number): Uint8Array => crypto.randomBytes(32 * n);
const faults = mkdtempSync(join(tmpdir(), 'ledger-signer-faults-'));
process.env['LEDGER_SIGNER_FAULT_DIR'] = faults;
const FAULTY = new URL('./faulty-worker.fixture.ts', import.meta.url);

describe('event signers', () => {
  const open: WorkerSigner[] = [];
  const signer = (options: Partial<ConstructorParameters<typeof WorkerSigner>[0]> = {}): WorkerSigner => {
    const s = new WorkerSigner({ crypto, secretKey: key.secretKey, publicKey: key.publicKey, ...options });
    open.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    for (const token of ['crash', 'hang', 'garbage']) rmSync(join(faults, token), { force: true });
  });
  afterAll(() => rmSync(faults, { recursive: true, force: true }));

  it('sign each 32-byte hash with the ledger key, in order, the same in a worker as in this thread', async () => {
    const input = hashes(300);
    const inThread = await new InThreadSigner(crypto, key.secretKey).sign(input);
    expect(inThread).toHaveLength(300 * 64);
    for (const at of [0, 137, 299]) expect(crypto.ed25519.verify(key.publicKey, input.subarray(at * 32, at * 32 + 32), inThread.subarray(at * 64, at * 64 + 64))).toBe(true);
    // Split over three workers, reassembled in order (Ed25519 is deterministic).
    expect(await signer({ workers: 3 }).sign(input)).toEqual(inThread);
    expect(await signer().sign(new Uint8Array(0))).toHaveLength(0);
  });

  it('refuse input that is not whole hashes', async () => {
    expect(() => signEventHashes(crypto, key.secretKey, new Uint8Array(33))).toThrow(/not a multiple of 32/);
    await expect(new InThreadSigner(crypto, key.secretKey).sign(new Uint8Array(31))).rejects.toMatchObject({ code: 'E_SIGNER' });
    await expect(signer().sign(new Uint8Array(40))).rejects.toMatchObject({ code: 'E_SIGNER' });
  });

  it('fail the requests of a worker that crashes, and sign the next ones on a new worker', async () => {
    const s = signer({ script: FAULTY });
    expect(await s.sign(hashes(3))).toHaveLength(192);
    writeFileSync(join(faults, 'crash'), '');
    await expect(s.sign(hashes(5))).rejects.toMatchObject({ code: 'E_SIGNER', message: expect.stringMatching(/exited \(code 70\)/) });
    expect(s.failures).toBe(1);
    const input = hashes(4);
    expect(await s.sign(input)).toEqual(signEventHashes(crypto, key.secretKey, input));
  });

  it('fail a request that is not answered in time, and replace the worker', async () => {
    const s = signer({ script: FAULTY, timeoutMs: 3000 });
    writeFileSync(join(faults, 'hang'), '');
    await expect(s.sign(hashes(2))).rejects.toMatchObject({ code: 'E_SIGNER', message: expect.stringMatching(/did not answer within 3000 ms/) });
    rmSync(join(faults, 'hang'));
    expect(await s.sign(hashes(2))).toHaveLength(128);
    expect(s.failures).toBe(1);
  });

  it('refuse signatures that do not verify with the ledger key', async () => {
    writeFileSync(join(faults, 'garbage'), '');
    await expect(signer({ script: FAULTY }).sign(hashes(2))).rejects.toMatchObject({ code: 'E_SIGNER', message: expect.stringMatching(/does not verify/) });
  });

  it('fail when the worker cannot create the provider, and after close', async () => {
    const bogus = { ...crypto, name: 'bogus' } as unknown as CryptoProvider;
    await expect(signer({ crypto: bogus }).sign(hashes(1))).rejects.toMatchObject({ code: 'E_SIGNER', message: expect.stringMatching(/bogus/) });
    const s = signer();
    await s.sign(hashes(1));
    await s.close();
    await expect(s.sign(hashes(1))).rejects.toMatchObject({ code: 'E_SIGNER', message: expect.stringMatching(/closed/) });
  });
});
