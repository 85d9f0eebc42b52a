/**
 * Starts one schemapin service instance (DESIGN §2, issue 13). It wires parts and nothing
 * more: the pin projection (projection.ts) fed by the verified ledger reader (control
 * events sealed to this service: tools.pinned, tools.revoked), the review queue, and the
 * `bulwark.tools.*` handlers (handlers.ts). It answers only once the ledger is replayed; a
 * reader halt makes every command fail (so tool use is denied) until a restart rebuilds
 * from a ledger it can verify.
 */
import { createEventPublisher, createRejectionReporter, ensureStreams, Events, LEDGER_PRINCIPAL, serveCommands, type Bus, type CommandHandler, type CommandServer, type EventSubject } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender, type ChannelReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { encodeEvent, newEvent } from '@bulwark/events';
import { LedgerKeys, LedgerReaderTimeoutError, startLedgerReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import { createWellKnownResponse, DEFAULT_REVIEW_THRESHOLD, fetchDiscovery, loadPrivateKey, publicPemOf, type Discovered, type FetchOptions, type PinMode } from '@bulwark/schemapin';
import type { Logger } from '@bulwark/telemetry';
import { ToolsServiceError } from './errors.js';
import { createHandlers, type ToolsContext } from './handlers.js';
import { PinProjection, type PinProjectionMetrics } from './projection.js';
import { ReviewQueue } from './reviews.js';

export interface SchemaPinServiceOptions {
  /** A connected bus; the service does not close it. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** `svc.schemapin` and its X25519 key. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** The ledger's Ed25519 public key: replayed events must carry its signature. */
  readonly ledgerPublicKey: Uint8Array;
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  /** Principals allowed to pin, revoke, submit, review and approve. */
  readonly admins: readonly string[];
  /** Pinning mode (default automatic; `[tofu] automatic_key_pinning = false` → interactive). */
  readonly mode?: PinMode;
  readonly reviewThreshold?: number;
  /** Discovery for a domain; default the guarded HTTPS fetch with `fetch` options. */
  readonly resolveDiscovery?: (domain: string) => Promise<Discovered>;
  readonly fetch?: FetchOptions;
  /** How long a fetched discovery (and revocation) document is reused (default 300 000 ms; 0 = fetch every time). Failures are not kept. */
  readonly discoveryTtlMs?: number;
  /** Our provider key for the tools we operate. */
  readonly signing?: { readonly domain: string; readonly privateKeyPem: string };
  /** How long a pin waits to come back committed (default 5000 ms). */
  readonly applyWaitMs?: number;
  readonly bootTimeoutMs?: number;
  readonly syncIntervalMs?: number;
  readonly logger?: Logger;
  readonly version?: string;
}

export interface SchemaPinService {
  readonly instanceId: string;
  readonly projection: PinProjection;
  readonly halted: ReaderHaltedError | undefined;
  metrics(): PinProjectionMetrics & { readonly cache: ReturnType<PinProjection['cache']['stats']> };
  stop(): Promise<void>;
}

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * The provider we operate is us: its discovery document is made from our own signing key
 * (what `bulwark tools sign --discovery` would publish), never fetched, so the tools we sign
 * verify without a network path to our own domain.
 */
function withOwnDomain(signing: SchemaPinServiceOptions['signing'], resolve: (domain: string) => Promise<Discovered>): (domain: string) => Promise<Discovered> {
  if (signing === undefined) return resolve;
  const own: Discovered = { discovery: createWellKnownResponse(publicPemOf(loadPrivateKey(signing.privateKeyPem)), signing.domain), revocation: null };
  return (domain) => (domain === signing.domain ? Promise.resolve(own) : resolve(domain));
}

/** Reuses a domain's discovery for `ttlMs` (one fetch in flight per domain); a failure is not kept. */
function cachedResolver(resolve: (domain: string) => Promise<Discovered>, ttlMs: number): (domain: string) => Promise<Discovered> {
  if (ttlMs <= 0) return resolve;
  const entries = new Map<string, { at: number; value: Promise<Discovered> }>();
  return (domain) => {
    const hit = entries.get(domain);
    if (hit !== undefined && Date.now() - hit.at < ttlMs) return hit.value;
    if (entries.size >= 10_000) entries.clear();
    const value = resolve(domain);
    entries.set(domain, { at: Date.now(), value });
    value.catch(() => {
      if (entries.get(domain)?.value === value) entries.delete(domain);
    });
    return value;
  };
}

export async function startSchemaPinService(options: SchemaPinServiceOptions): Promise<SchemaPinService> {
  const { bus, provider, identity, directory, logger } = options;
  await ensureStreams(bus);
  const events = createEventPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL }));
  const rejections = createRejectionReporter(events, { reporter: identity.id });
  const projection = new PinProjection((event, why) => logger?.warn({ seq: event.seq, eventId: event.eventId, why }, 'schemapin: a ledger pin event was not applied'));
  let halted: ReaderHaltedError | undefined;
  // The key manager's facts from the same control subject: what the service's sessions are judged by (issue 12).
  const keys = new LedgerKeys();

  const reader = await startLedgerReader({
    bus,
    provider,
    identity,
    directory,
    receiver: options.ledgerReceiver ?? new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${identity.id}/pins`,
    mode: 'control',
    durablePrefix: 'schemapin',
    rejections,
    ...(logger === undefined ? {} : { logger }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
    keys,
    onEvent: (event) => projection.apply(event),
    onHalt: (halt) => {
      halted = halt;
      logger?.error({ code: halt.code, seq: halt.seq, problem: halt.problem }, 'schemapin ledger reader halted: every tool is refused until the service is restarted');
    },
    raise: (event) => events.publish({ subject: Events.security.violation satisfies EventSubject, eventId: event.eventId, payload: encodeEvent(event) }),
  });
  try {
    await reader.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await reader.stop();
    if (e instanceof LedgerReaderTimeoutError) throw new ToolsServiceError('E_TOOLS_BOOT', `schemapin service: ${e.message}`, { ...e.context }, { cause: e });
    throw e;
  }

  const ctx: ToolsContext = {
    projection,
    reviews: new ReviewQueue(),
    publish: async (eventType, subject, agentId, details) => {
      const event = newEvent({ agentId, eventType, details });
      await events.publish({ subject, eventId: event.eventId, payload: encodeEvent(event) });
      return event.eventId;
    },
    resolveDiscovery: withOwnDomain(options.signing, cachedResolver(options.resolveDiscovery ?? ((domain) => fetchDiscovery(domain, options.fetch ?? {})), options.discoveryTtlMs ?? 300_000)),
    admins: options.admins,
    mode: options.mode ?? 'automatic',
    reviewThreshold: options.reviewThreshold ?? DEFAULT_REVIEW_THRESHOLD,
    applyWaitMs: options.applyWaitMs ?? 5000,
    ...(options.signing === undefined ? {} : { signing: options.signing }),
  };
  // Fail secure: after a reader halt nothing is answered from a pin store that may be wrong.
  const guarded = Object.fromEntries(
    Object.entries(createHandlers(ctx)).map(([subject, handler]) => [
      subject,
      (async (req) => {
        if (halted !== undefined) throw new ToolsServiceError('E_TOOLS_HALTED', `schemapin: the ledger reader halted at seq ${halted.seq} (${halted.code}); every tool is refused`);
        return handler!(req);
      }) satisfies CommandHandler,
    ]),
  );
  let server: CommandServer;
  try {
    server = await serveCommands(bus, { service: 'tools', version: options.version ?? '0.1.0', rejections, sessions: { provider, self: identity, directory: keys.guard(directory) }, handlers: guarded });
  } catch (e) {
    await reader.stop();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    instanceId: server.instanceId,
    projection,
    get halted() {
      return halted;
    },
    metrics: () => ({ ...projection.metrics(), cache: projection.cache.stats() }),
    stop() {
      stopping ??= (async () => {
        await server.stop();
        await reader.stop();
      })();
      return stopping;
    },
  };
}
