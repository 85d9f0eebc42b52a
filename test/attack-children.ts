// Parent side of test/attack-child.ts: a test world whose keys can be handed to child
// processes, and spawning a child that is ready to be killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createCryptoProvider } from '@bulwark/crypto';
import { encodeSignedDirectoryEntry, signDirectoryEntry, TrustedDirectory, type LocalIdentity } from '@bulwark/envelope';
import type { ChildConfig } from './attack-child.js';

export const provider = createCryptoProvider('node');
const CHILD = fileURLToPath(new URL('./attack-child.ts', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export interface SharedWorld {
  readonly directory: TrustedDirectory;
  identity(id: string): LocalIdentity;
  /** The part of a child's configuration that makes it a member of this world as `id`. */
  childKeys(id: string): Pick<ChildConfig, 'rootPublicKey' | 'entries' | 'self'>;
}

export function sharedWorld(ids: readonly string[]): SharedWorld {
  const root = provider.ed25519.generateKeyPair();
  const directory = new TrustedDirectory({ provider, rootPublicKey: root.publicKey });
  const identities = new Map<string, LocalIdentity>();
  const entries: string[] = [];
  const now = Date.now();
  for (const id of ids) {
    const x25519 = provider.x25519.generateKeyPair();
    const signed = signDirectoryEntry(provider, root.secretKey, {
      id,
      ed25519PublicKey: provider.ed25519.generateKeyPair().publicKey,
      x25519PublicKey: x25519.publicKey,
      keyVersion: 1,
      notBefore: now - 3_600_000,
      notAfter: now + 3_600_000,
      revoked: false,
    });
    if (!directory.put(signed).ok) throw new Error(`directory refused ${id}`);
    entries.push(hex(encodeSignedDirectoryEntry(signed)));
    identities.set(id, { id, x25519 });
  }
  const identity = (id: string) => {
    const found = identities.get(id);
    if (found === undefined) throw new Error(`no identity ${id}`);
    return found;
  };
  return {
    directory,
    identity,
    childKeys: (id) => {
      const me = identity(id);
      return { rootPublicKey: hex(root.publicKey), entries, self: { id, secretKey: hex(me.x25519.secretKey), publicKey: hex(me.x25519.publicKey) } };
    },
  };
}

export interface RunningChild {
  readonly process: ChildProcess;
  /** What the child printed after `ready`: its instance id (rpc-server) or pid (consumer). */
  readonly id: string;
  /** Resolves with the signal or exit code once the process is gone. */
  readonly exited: Promise<NodeJS.Signals | number | null>;
}

export async function spawnChild(role: 'rpc-server' | 'consumer', config: ChildConfig, readyTimeoutMs = 20_000): Promise<RunningChild> {
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
