/**
 * A service's own NATS credentials renewed before they expire (issue 12, "Rotation"; SPIRE
 * renews its SVIDs the same way): at half of the JWT's life the service asks the key manager for
 * a fresh JWT of its own user (`bulwark.keys.renew`, over a Noise session as itself) and the bus
 * presents it at its next reconnect (the server closes a connection whose JWT expires; the client
 * reconnects at once). A failed renewal is logged and retried (every tenth of the time left, at
 * least `minRetryMs`). If the JWT expires without a renewal, `expired` rejects: the boot then stops
 * the service with exit 1 rather than let it run on cut off from the bus (fail secure, never silent).
 * A JWT without an expiry is never renewed and never expires. The key manager, which answers the
 * renewals, renews its own with its own account key (`renew`).
 */
import { CommandClient, Commands, createEventPublisher, createRejectionReporter, LEDGER_PRINCIPAL, type Bus, type KvDirectory } from '@bulwark/bus';
import { createKeyCalls, startCredentialRenewal } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import type { Identity } from '@bulwark/keystore';
import type { Logger } from '@bulwark/telemetry';

export interface ServiceRenewalOptions {
  readonly bus: Bus;
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array };
  readonly identity: Identity;
  readonly directory: KvDirectory;
  readonly crypto: CryptoProvider;
  readonly log: Logger;
  /** Where a fresh JWT comes from (default: `bulwark.keys.renew` to the key manager). */
  readonly renew?: (natsUser: string) => Promise<{ natsJwt: string }>;
  readonly minRetryMs?: number;
  readonly timeoutMs?: number;
}

export interface ServiceRenewal {
  /** Rejects with E_CREDENTIALS_EXPIRED when the presented JWT expired without a renewal; never resolves. */
  readonly expired: Promise<never>;
  readonly renewals: number;
  stop(): void;
}

/** `bulwark.keys.renew` to the key manager, over a Noise session as the service itself. */
function keysRenew(options: ServiceRenewalOptions): (natsUser: string) => Promise<{ natsJwt: string }> {
  const { bus, identity, crypto, directory } = options;
  const client = new CommandClient(bus, {
    sessions: { provider: crypto, self: identity, directory },
    // A reply frame that fails the envelope's checks is a security event, as from any service.
    rejections: createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: identity.id }),
  });
  const calls = createKeyCalls(crypto, async (subject, body) => {
    const reply = await client.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: options.timeoutMs ?? 5000 });
    return JSON.parse(new TextDecoder().decode(reply)) as unknown;
  });
  return (natsUser) => calls.renew(natsUser);
}

export function startServiceRenewal(options: ServiceRenewalOptions): ServiceRenewal {
  const { bus, identity, log } = options;
  let fail: (error: BulwarkError) => void = () => undefined;
  const expired = new Promise<never>((_, reject) => (fail = reject));
  // Handled by whoever awaits it; unobserved (the service already stopping) it must not crash the process.
  expired.catch(() => undefined);
  let lastError: unknown;
  let watchdog: NodeJS.Timeout | undefined;
  const watch = (expires: number | undefined): void => {
    if (watchdog !== undefined) clearTimeout(watchdog);
    if (expires === undefined) return;
    const check = (): void => {
      const left = expires - Date.now();
      if (left > 0) {
        watchdog = setTimeout(check, Math.min(left, 2 ** 31 - 1));
        watchdog.unref();
        return;
      }
      const why = lastError instanceof Error ? lastError.message : 'no renewal succeeded';
      fail(new BulwarkError('E_CREDENTIALS_EXPIRED', `${identity.id}: its NATS credentials expired at ${new Date(expires).toISOString()} without a renewal (${why}): stopping rather than run cut off from the bus`, { principal: identity.id, expires }));
    };
    check();
  };
  const renewal = startCredentialRenewal({
    bus,
    credentials: options.credentials,
    renew: options.renew ?? keysRenew(options),
    ...(options.minRetryMs === undefined ? {} : { minRetryMs: options.minRetryMs }),
    onRenewed: (expires) => {
      lastError = undefined;
      log.info({ principal: identity.id, expires: new Date(expires).toISOString(), subject: Commands.keys.renew }, 'NATS credentials renewed');
      watch(expires);
    },
    onError: (error, retryInMs) => {
      lastError = error;
      log.warn({ err: error, principal: identity.id, retryInMs }, 'NATS credential renewal failed; retrying');
    },
  });
  if (renewal.expires !== undefined) {
    const at = new Date(renewal.expires).toISOString();
    log.info({ principal: identity.id, expires: at }, `NATS credentials expire at ${at}: renewed at half-life`);
  }
  watch(renewal.expires);
  return {
    expired,
    get renewals() {
      return renewal.renewals;
    },
    stop() {
      renewal.stop();
      if (watchdog !== undefined) clearTimeout(watchdog);
    },
  };
}
