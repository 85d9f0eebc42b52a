import { createServer } from 'node:net';
import { InputError } from '@bulwark/errors';

/** A port on 127.0.0.1 that nothing listens on now (the kernel's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Throws a one-line InputError when `port` on 127.0.0.1 is taken. */
export async function requireFreePort(port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new InputError('E_PORT_BUSY', `${what}: port ${port} on 127.0.0.1 is already in use; choose another or leave the option out for a free port`, { port })
          : error,
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

export function parsePort(option: string, value: string): number {
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port < 1 || port > 65535) throw new InputError('E_USAGE', `${option} ${JSON.stringify(value)}: not a port (1-65535)`);
  return port;
}
