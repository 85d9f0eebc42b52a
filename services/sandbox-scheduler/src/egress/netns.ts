import { spawn, type ChildProcess } from 'node:child_process';
import { SandboxRuntimeError } from '../errors.js';
import { findBusybox } from '../oci/rootfs.js';

/** The port the sandbox reaches its proxy on, on its own loopback. */
export const EGRESS_PROXY_PORT = 3128;

// Runs on the host, inside the sandbox's new network namespace only (its files are the host's):
// accepts on 127.0.0.1:PORT there and pipes each connection to the proxy's Unix socket.
const FORWARDER = `
const net = require('node:net');
const [, sock, port] = process.argv;
net.createServer((c) => {
  const u = net.connect(sock);
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

export interface EgressNamespace {
  /** `/proc/<pid>/ns/net`: the spec joins this namespace instead of creating one. */
  readonly path: string;
  stop(): Promise<void>;
}

/**
 * A network namespace with nothing but loopback (no bridge, no veth, no address but 127.0.0.1),
 * held by a forwarder to the proxy socket. `unshare --net` creates it; busybox's `ip` brings lo up.
 */
export async function startEgressNamespace(proxySocket: string, port = EGRESS_PROXY_PORT): Promise<EgressNamespace> {
  const busybox = findBusybox();
  if (busybox === undefined) throw new SandboxRuntimeError('E_SANDBOX_EGRESS', 'egress: busybox-static is needed to bring up the sandbox loopback', {});
  const child: ChildProcess = spawn('unshare', ['--net', '--', busybox, 'sh', '-c', `${busybox} ip link set lo up && exec "$0" "$@"`, process.execPath, '-e', FORWARDER, proxySocket, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => reject(new SandboxRuntimeError('E_SANDBOX_EGRESS', `egress: the sandbox network namespace did not start: ${why}`, {}));
    child.stdout?.once('data', () => resolve());
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code) => fail(`exit ${code}: ${stderr.trim()}`));
  });
  return {
    path: `/proc/${child.pid}/ns/net`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
