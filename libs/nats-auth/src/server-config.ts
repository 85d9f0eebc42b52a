/**
 * The nats-server configuration for Bulwark (NATS 2.9, operator mode): the operator JWT, the
 * system account, the accounts' JWTs preloaded into a MEMORY resolver, JetStream with a store
 * directory. With an operator configured the server accepts no connection without a user
 * JWT signed by a preloaded account (there is no `no_auth_user`).
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { NatsAuthError } from './errors.js';
import type { NatsAuthority } from './authority.js';
import { writePrivateFile } from './jwt-file.js';

export interface NatsServerConfigOptions {
  /** Listen address (default 127.0.0.1). */
  readonly host?: string;
  /** Client port (default 4222). */
  readonly port?: number;
  /** JetStream's store directory (absolute in the file). */
  readonly storeDir: string;
  /** The monitoring HTTP port (`/varz`, `/healthz`, ...); off when unset. */
  readonly monitorPort?: number;
  /** `server_name` (default `bulwark`). */
  readonly serverName?: string;
}

export const NATS_CONFIG_FILE = 'nats-server.conf';

/**
 * The longest protocol line the server accepts. A client's CONNECT carries its user JWT, and
 * an administrator's explicit permission lists make it ~7 KiB, past NATS's 4 KiB default.
 * `ensureNatsUser` refuses to issue a JWT longer than MAX_USER_JWT_LENGTH, well under it.
 */
export const MAX_CONTROL_LINE = 32 * 1024;
export const MAX_USER_JWT_LENGTH = 24 * 1024;

const HOST = /^[A-Za-z0-9.:-]{1,253}$/;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const PUBLIC_ACCOUNT = /^A[A-Z2-7]{55}$/;
const PUBLIC_OPERATOR = /^O[A-Z2-7]{55}$/;
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function port(value: number | undefined, fallback: number, what: string): number {
  const p = value ?? fallback;
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new NatsAuthError('E_NATS_CONFIG', `nats-server config: ${what} ${String(p)} is not a port (1-65535)`, { what });
  return p;
}

/** The configuration text. Every value is checked before it is written, so nothing can inject a directive. */
export function natsServerConfig(authority: NatsAuthority, options: NatsServerConfigOptions): string {
  const host = options.host ?? '127.0.0.1';
  if (!HOST.test(host)) throw new NatsAuthError('E_NATS_CONFIG', `nats-server config: listen host ${JSON.stringify(host)} is not a host name or address`, { host });
  const name = options.serverName ?? 'bulwark';
  if (!NAME.test(name)) throw new NatsAuthError('E_NATS_CONFIG', `nats-server config: server name ${JSON.stringify(name)}: use letters, digits, _ and -`, { name });
  const storeDir = resolve(options.storeDir);
  if (/["\\\n\r]/.test(storeDir)) throw new NatsAuthError('E_NATS_CONFIG', `nats-server config: store directory ${JSON.stringify(storeDir)} holds a quote, backslash or newline`, {});
  if (!PUBLIC_OPERATOR.test(authority.operator.publicKey) || !JWT.test(authority.operator.jwt)) throw new NatsAuthError('E_NATS_CONFIG', 'nats-server config: the operator key or JWT is malformed', {});
  for (const a of [authority.account, authority.systemAccount]) {
    if (!PUBLIC_ACCOUNT.test(a.publicKey) || !JWT.test(a.jwt)) throw new NatsAuthError('E_NATS_CONFIG', `nats-server config: account ${a.publicKey.slice(0, 8)}… key or JWT is malformed`, {});
  }
  const lines = [
    '# Bulwark NATS server (DESIGN §3a), written by `bulwark init`: operator mode, every',
    '# client authenticates with a user JWT signed by the account BULWARK. Re-run init to',
    '# regenerate; edits here are lost.',
    `server_name: ${name}`,
    `host: "${host}"`,
    `port: ${port(options.port, 4222, 'port')}`,
    ...(options.monitorPort === undefined ? [] : [`http_port: ${port(options.monitorPort, 8222, 'monitor port')}`]),
    `max_control_line: ${MAX_CONTROL_LINE}`,
    '# Messages carry SecureChannel v1 frames (at most 1 MiB of payload plus headers).',
    'max_payload: 2MB',
    '',
    'jetstream {',
    `  store_dir: "${storeDir}"`,
    '}',
    '',
    `# operator ${authority.operator.publicKey}`,
    `operator: "${authority.operator.jwt}"`,
    `system_account: ${authority.systemAccount.publicKey}`,
    '',
    'resolver: MEMORY',
    'resolver_preload: {',
    `  # BULWARK`,
    `  ${authority.account.publicKey}: "${authority.account.jwt}"`,
    `  # SYS`,
    `  ${authority.systemAccount.publicKey}: "${authority.systemAccount.jwt}"`,
    '}',
    '',
  ];
  return lines.join('\n');
}

/** Writes `<dir>/nats-server.conf` (dir 0700, file 0600) and creates the store directory; returns the file's path. */
export async function writeNatsServerConfig(dir: string, authority: NatsAuthority, options: NatsServerConfigOptions): Promise<string> {
  const text = natsServerConfig(authority, options);
  const abs = resolve(dir);
  try {
    await fs.mkdir(abs, { recursive: true, mode: 0o700 });
    await fs.mkdir(resolve(options.storeDir), { recursive: true, mode: 0o700 });
    const path = join(abs, NATS_CONFIG_FILE);
    await writePrivateFile(path, text);
    return path;
  } catch (cause) {
    if (cause instanceof NatsAuthError) throw cause;
    throw new NatsAuthError('E_NATS_CONFIG', `cannot write the nats-server configuration in ${abs}: ${cause instanceof Error ? cause.message : String(cause)}`, { dir: abs }, { cause });
  }
}
