import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { BusConnectError, BusRequestError } from './errors.js';

/**
 * A connection as a user of the NATS system account (no JetStream there, so not a `Bus`): the
 * key manager's channel to the server for account claims. Reconnects on its own.
 */
export class SystemAccountConnection {
  readonly #nc: NatsConnection;

  private constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  static async connect(options: { url: string; name: string; credentials: { jwt: string; seed: Uint8Array } }): Promise<SystemAccountConnection> {
    try {
      const nc = await connect({ servers: options.url, name: options.name, authenticator: jwtAuthenticator(options.credentials.jwt, options.credentials.seed), maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true });
      return new SystemAccountConnection(nc);
    } catch (cause) {
      throw new BusConnectError('E_BUS_CONNECT', `cannot connect to NATS at ${options.url} as a system-account user: ${cause instanceof Error ? cause.message : String(cause)}`, { url: options.url }, { cause });
    }
  }

  /** The `updateAccountClaims` below on this connection. */
  updateAccountClaims(accountPublicKey: string, jwt: string, timeoutMs = 2000): Promise<void> {
    return updateAccountClaims(this.#nc, accountPublicKey, jwt, timeoutMs);
  }

  async close(): Promise<void> {
    if (!this.#nc.isClosed()) await this.#nc.close();
  }
}

/**
 * Pushes a new account JWT to the server through the system account (a connection whose user
 * belongs to it): `$SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE`. With `resolver: MEMORY`
 * nats-server 2.9.10 answers this subject (it does not answer `$SYS.REQ.CLAIMS.UPDATE`) and
 * applies the claims at once: users in the JWT's `revocations` are disconnected ("User
 * Authentication Revoked") and refused afterwards. The update lives in the server's memory
 * only: a restart loads the configuration's `resolver_preload` again, so the pusher must push
 * again (the key manager re-pushes at start and periodically). Throws `E_BUS_CLAIMS` unless
 * the server answers code 200.
 */
async function updateAccountClaims(nc: NatsConnection, accountPublicKey: string, jwt: string, timeoutMs = 2000): Promise<void> {
  if (!/^A[A-Z2-7]{55}$/.test(accountPublicKey)) throw new BusRequestError('E_BUS_CLAIMS', `account claims update: ${JSON.stringify(accountPublicKey.slice(0, 60))} is not an account public key`, {});
  const subject = `$SYS.REQ.ACCOUNT.${accountPublicKey}.CLAIMS.UPDATE`;
  let text: string;
  try {
    text = (await nc.request(subject, jwt, { timeout: timeoutMs })).string();
  } catch (cause) {
    throw new BusRequestError('E_BUS_CLAIMS', `account claims update on ${subject}: ${cause instanceof Error ? cause.message : String(cause)} (is this connection a system-account user?)`, { subject }, { cause });
  }
  let reply: { data?: { code?: number; message?: string }; error?: { code?: number; description?: string } };
  try {
    reply = JSON.parse(text) as typeof reply;
  } catch (cause) {
    throw new BusRequestError('E_BUS_CLAIMS', `account claims update on ${subject}: the server's reply is not JSON`, { subject }, { cause });
  }
  if (reply.data?.code !== 200) {
    throw new BusRequestError('E_BUS_CLAIMS', `account claims update on ${subject} refused: ${reply.error?.description ?? reply.data?.message ?? text.slice(0, 200)}`, { subject });
  }
}
