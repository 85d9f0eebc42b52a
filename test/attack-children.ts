// Parent side of test/attack-child.ts: a test world whose keys can be handed to child
// processes, and spawning a child that is ready to be killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createCryptoProvider } from '@bulwark/crypto';
import { encodeSignedDirectoryEntry } from '@bulwark/envelope';
import { testWorld, type TestWorld } from '@bulwark/envelope/testing';
import type { ChildConfig } from './attack-child.js';

export const provider = createCryptoProvider('node');
const CHILD = fileURLToPath(new URL('./attack-child.ts', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export interface SharedWorld extends TestWorld {
  /** The part of a child's configuration that makes it a member of this world as `id`. */
  childKeys(id: string): Pick<ChildConfig, 'rootPublicKey' | 'entries' | 'self'>;
}

export function sharedWorld(ids: readonly string[]): SharedWorld {
  const world = testWorld({ provider, ids });
  const entries = ids.map((id) => hex(encodeSignedDirectoryEntry(world.identity(id).signed)));
  return {
    ...world,
    childKeys: (id) => {
      const me = world.identity(id);
      return { rootPublicKey: hex(world.root.publicKey), entries, self: { id, secretKey: hex(me.x25519.secretKey), publicKey: hex(me.x25519.publicKey) } };
    },
  };
}

export interface RunningChild {
  readonly process: ChildProcess;
  /** What the child printed after `ready`: its instance id (rpc-server) or pid (consumer, incident-response). */
  readonly id: string;
  /** Resolves with the signal or exit code once the process is gone. */
  readonly exited: Promise<NodeJS.Signals | number | null>;
}

export async function spawnChild(role: 'rpc-server' | 'consumer' | 'incident-response', config: ChildConfig, readyTimeoutMs = 20_000): Promise<RunningChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, role], {
    env: { ...process.env, CHILD_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const id = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child ${role} not ready after ${readyTimeoutMs} ms: ${stderr.slice(-500)}`));
    }, readyTimeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const ready = /ready (\S+)\n/.exec(out);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child ${role} exited (${signal ?? code}) before it was ready: ${stderr.slice(-500)}`));
    });
  });
  return { process: child, id, exited };
}

/** Ends a child that may still run: SIGKILL by its pid, then wait for the exit. */
export async function killChild(child: RunningChild | undefined): Promise<void> {
  if (child === undefined || child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGKILL');
  await child.exited;
}
