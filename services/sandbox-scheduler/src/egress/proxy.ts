import { lookup } from 'node:dns/promises';
import { chmodSync } from 'node:fs';
import { isIP, createConnection, createServer, type Server, type Socket } from 'node:net';
import { allowsAddress, allowsName, type EgressAllowlist } from './allowlist.js';

/** One connection attempt through the proxy, allowed or not (S6.3: every attempt logged). */
export interface EgressAttempt {
  readonly sandboxId: string;
  readonly at: number;
  readonly host: string;
  readonly port: number;
  /** The address connected to (after resolution), when it got that far. */
  readonly address?: string;
  readonly allowed: boolean;
  readonly reason: string;
}

const MAX_HEAD = 8192;

/**
 * The filtering proxy on the host side: HTTP CONNECT over a Unix socket, which only the
 * sandbox's forwarder reaches. A CONNECT is allowed when its name matches a domain rule (then the
 * name is resolved and that address is used) or its address falls in an IP-range rule (a name
 * that resolves into a range is allowed on the address it resolved to, so the connection goes
 * exactly where the check looked). Anything else is answered 403 and closed.
 */
export class EgressProxy {
  readonly attempts: EgressAttempt[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly sandboxId: string,
    private readonly allowlist: EgressAllowlist,
    private readonly onAttempt?: (attempt: EgressAttempt) => void,
  ) {
    this.server = createServer((c) => this.accept(c));
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        chmodSync(path, 0o600);
        resolve();
      });
    });
  }

  private record(attempt: Omit<EgressAttempt, 'sandboxId' | 'at'>): void {
    const full = { sandboxId: this.sandboxId, at: Date.now(), ...attempt };
    this.attempts.push(full);
    this.onAttempt?.(full);
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) client.destroy();
        return;
      }
      client.off('data', onData);
      const rest = head.subarray(end + 4);
      void this.connect(client, head.subarray(0, end).toString('latin1'), rest);
    };
    client.on('data', onData);
  }

  private async connect(client: Socket, head: string, rest: Buffer): Promise<void> {
    const m = /^CONNECT (\[[^\]]+\]|[^\s:]+):(\d{1,5}) HTTP\/1\.[01]/.exec(head);
    if (m?.[1] === undefined || m[2] === undefined) {
      this.record({ host: head.split('\r\n')[0]?.slice(0, 200) ?? '', port: 0, allowed: false, reason: 'not a CONNECT request' });
      client.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n\r\n');
      return;
    }
    const host = m[1].replace(/^\[(.*)\]$/, '$1');
    const port = Number(m[2]);
    let address: string;
    let reason: string;
    if (isIP(host) !== 0) {
      address = host;
      if (!allowsAddress(this.allowlist, address, port)) return this.refuse(client, host, port, 'no rule allows this address and port', address);
      reason = 'ip range rule';
    } else {
      try {
        address = (await lookup(host)).address;
      } catch {
        return this.refuse(client, host, port, 'the name does not resolve');
      }
      if (allowsName(this.allowlist, host, port)) reason = 'domain rule';
      else if (allowsAddress(this.allowlist, address, port)) reason = 'ip range rule (resolved)';
      else return this.refuse(client, host, port, 'no rule allows this name and port', address);
    }
    const upstream = createConnection({ host: address, port });
    upstream.once('connect', () => {
      this.record({ host, port, address, allowed: true, reason });
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.once('error', (e) => {
      this.record({ host, port, address, allowed: true, reason: `allowed, but the connection failed: ${e.message}` });
      client.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n');
    });
    this.sockets.add(upstream);
    upstream.once('close', () => this.sockets.delete(upstream));
  }

  private refuse(client: Socket, host: string, port: number, reason: string, address?: string): void {
    this.record({ host, port, ...(address === undefined ? {} : { address }), allowed: false, reason });
    client.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
