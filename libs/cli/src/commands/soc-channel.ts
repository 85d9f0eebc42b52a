/**
 * Reading the SOC stream on its channel (issue 12 "Channels"; `soc.incidents`, SOC_CHANNEL): what
 * `bulwark soc tail` and the demo's incident step share. (An incident service run without a SOC
 * channel seals a copy to each analyst instead: those are read too, through the analyst's own
 * sealed-copy durables, `socConsumers`, with the same checks; under `bulwark up` they stay empty.)
 *
 * The epoch keys come from the ledger (`followChannelEpochs`: every announcement checked by the
 * verified query reader, then by the key ring: the key manager's, its successor, the wrap to this
 * analyst's key), the frames through the analyst's own channel durables (the only ones NATS grants
 * it). A channel frame is authenticated by the epoch key alone, and every subscriber of an epoch
 * holds that key, so before a finding is handed on two more checks: the frame names
 * svc.incident-response as its sender, and the incident service, asked over the analyst's own
 * authenticated session (`bulwark.incident.list`), has the incident with the finding's id,
 * severity, category, rule, description and creation time (`findingMismatch`). A frame under an
 * epoch not learnt yet is delivered again once the ledger is asked (`redeliverRejected`), so
 * nothing is skipped; one the incident service cannot be asked about waits (a handler failure is
 * redelivered); one it contradicts is refused and never printed.
 */
import { Commands, genesisFromDirectory, RejectionReporter, ServicePrincipals, SOC_CHANNEL, startStreamConsumer, type Bus, type CommandSubject, type Delivery, type Rejection, type RunningConsumer } from '@bulwark/bus';
import { CHANNEL_ISSUER, directoryIssuerKey, followChannelEpochs, type ChannelEpochFollower } from '@bulwark/channel';
import type { CryptoProvider } from '@bulwark/crypto';
import { ChannelReceiver, SealedReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import { findingMismatch, SEVERITIES, socConsumers, type IncidentFacts, type Severity } from '@bulwark/incident-response';
import type { KeyStore } from '@bulwark/keystore';
import { analystChannelConsumers } from '@bulwark/nats-auth';

const NINETY_DAYS_MS = 90 * 24 * 3600 * 1000;

/** A finding read off the channel and confirmed by the incident service. */
export interface SocFinding {
  readonly subject: string;
  readonly category: string;
  readonly ce: { readonly id?: string; readonly type?: string; readonly time?: string };
  readonly finding: Readonly<Record<string, unknown>>;
  /** The incident service's record of it (what was checked against). */
  readonly incident: IncidentFacts;
}

export interface SocStreamReaderOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** The analyst: its wraps (X25519) and its session to the ledger. */
  readonly identity: LocalIdentity;
  /** Its X25519 secret per key version: epochs of older versions stay readable while it keeps them. */
  readonly x25519SecretKey: (keyVersion: number) => Uint8Array | undefined;
  readonly directory: Directory;
  /** The incident service's answer to `bulwark.incident.list` over the analyst's authenticated session. */
  readonly call: (subject: CommandSubject, body: unknown) => Promise<unknown>;
  /** Least severity read (default info). */
  readonly floor?: Severity;
  readonly onFinding: (finding: SocFinding) => void | Promise<void>;
  /** A frame or finding refused (not printed): why. */
  readonly onRefused?: (why: string) => void;
  /** How often the ledger is asked for new epochs besides on meeting one (default 2000 ms). */
  readonly syncIntervalMs?: number;
  /** The ledger's genesis key (its version 1: audit-ledger.vkey, BULWARK_LEDGER_PUBLIC_KEY); default its directory entry while that is version 1. */
  readonly ledgerPublicKey?: Uint8Array;
}

export interface SocStreamReader {
  readonly follower: ChannelEpochFollower;
  stop(): Promise<void>;
}

/** Every X25519 secret of `id` in `store`, by key version. */
export async function x25519Versions(store: KeyStore, id: string): Promise<(version: number) => Uint8Array | undefined> {
  const secrets = new Map<number, Uint8Array>();
  for (const info of await store.list(id)) {
    if (info.kind === 'x25519') secrets.set(info.version, (await store.get({ principal: id, kind: 'x25519', version: info.version })).secretKey);
  }
  return (version) => secrets.get(version);
}

/** Asks the ledger again as soon as a frame under an epoch not held yet is met (it is redelivered meanwhile). */
class EpochRefresh extends RejectionReporter {
  constructor(reporter: string, private readonly refresh: () => void, private readonly refused: (why: string) => void) {
    super({ reporter, publish: async () => undefined });
  }
  override report(rejection: Rejection): void {
    if (rejection.reason === 'E_UNKNOWN_EPOCH') this.refresh();
    else this.refused(`a frame on ${rejection.subject ?? 'the SOC stream'} does not open (${rejection.reason})`);
  }
}

export async function readSocStream(options: SocStreamReaderOptions): Promise<SocStreamReader> {
  const { bus, provider, identity, directory } = options;
  const refused = options.onRefused ?? (() => undefined);
  const receiver = new ChannelReceiver({ provider, directory, channelId: SOC_CHANNEL, keepHistory: true, staleAfterMs: NINETY_DAYS_MS });
  const quiet = new RejectionReporter({ reporter: identity.id, publish: async () => undefined });
  const follower = await followChannelEpochs({
    bus,
    provider,
    identity,
    directory,
    x25519SecretKey: options.x25519SecretKey,
    ledgerPublicKey: options.ledgerPublicKey ?? ledgerKeyOf(directory),
    issuer: CHANNEL_ISSUER,
    issuerKey: directoryIssuerKey(directory, CHANNEL_ISSUER),
    channels: [SOC_CHANNEL],
    onEpoch: (key) => receiver.install(key),
    rejections: quiet,
    syncIntervalMs: options.syncIntervalMs ?? 2000,
  });
  let refreshing: Promise<void> | undefined;
  const refresh = (): void => {
    refreshing ??= follower.refresh().catch((e: unknown) => refused(`the ledger's channel epochs: ${e instanceof Error ? e.message : String(e)}`)).finally(() => (refreshing = undefined));
  };
  const rejections = new EpochRefresh(identity.id, refresh, refused);
  const floor = options.floor ?? 'info';
  const wanted = new Set(SEVERITIES.slice(SEVERITIES.indexOf(floor)));
  const handle = async (d: Delivery): Promise<void> => {
    const [, , severity, category] = d.subject.split('.');
    if (d.meta.sender !== ServicePrincipals.incident) return refused(`a frame on ${d.subject} names ${d.meta.sender} as its sender, not ${ServicePrincipals.incident}`);
    let finding: Record<string, unknown>;
    try {
      finding = JSON.parse(new TextDecoder().decode(d.plaintext)) as Record<string, unknown>;
    } catch {
      return refused(`a frame on ${d.subject} is not a JSON finding`);
    }
    const uid = (finding['finding_info'] as { uid?: unknown } | undefined)?.uid;
    if (typeof uid !== 'string') return refused(`a finding on ${d.subject} has no finding_info.uid`);
    let reply: { incidents: (IncidentFacts & Record<string, unknown>)[] };
    try {
      reply = (await options.call(Commands.incident.list, { id: uid })) as typeof reply;
    } catch (e) {
      if ((e as { code?: unknown }).code === 'E_INCIDENT_UNKNOWN') return refused(`finding ${uid} on ${d.subject}: the incident service has no such incident`);
      // The service unreachable, or not taking this analyst: the frame is delivered again later, never printed unchecked.
      refused(`finding ${uid} on ${d.subject}: the incident service could not confirm it (${e instanceof Error ? e.message : String(e)}); delivered again later`);
      throw e;
    }
    const incident = reply.incidents.find((i) => i.id === uid);
    if (incident === undefined) return refused(`finding ${uid} on ${d.subject}: the incident service has no such incident`);
    const why = findingMismatch(finding, incident) ?? (incident.severity !== severity || incident.category !== category ? `its subject ${d.subject} is not the incident's severity and category (${incident.severity}.${incident.category})` : undefined);
    if (why !== undefined) return refused(`finding ${uid} on ${d.subject}: ${why}`);
    const ce = { ...optional('id', d.header('ce-id')), ...optional('type', d.header('ce-type')), ...optional('time', d.header('ce-time')) };
    await options.onFinding({ subject: d.subject, category: incident.category, ce, finding, incident });
  };
  const consumers: RunningConsumer[] = [];
  try {
    for (const grant of analystChannelConsumers(identity.id).filter((g) => wanted.has(g.filter.split('.')[2] as Severity))) {
      consumers.push(await startStreamConsumer(bus, receiver, { stream: 'incidents', durable: grant.durable, filterSubject: grant.filter, redeliverRejected: ['E_UNKNOWN_EPOCH'] }, handle, rejections));
    }
    const sealed = new SealedReceiver({ provider, self: identity, directory, staleAfterMs: NINETY_DAYS_MS });
    for (const spec of socConsumers(identity.id, floor)) consumers.push(await startStreamConsumer(bus, sealed, { stream: 'incidents', ...spec }, handle, rejections));
  } catch (e) {
    await Promise.all(consumers.map((c) => c.stop()));
    await follower.stop();
    throw e;
  }
  return {
    follower,
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
      await follower.stop();
    },
  };
}

/** The ledger's genesis key from its root-signed directory entry, only while that is its version 1 (as every service takes it without a pin). */
function ledgerKeyOf(directory: Directory): Uint8Array {
  const genesis = genesisFromDirectory(directory);
  if ('key' in genesis) return genesis.key;
  if (genesis.keyVersion === undefined) throw new BulwarkError('E_SOC_CHANNEL', `no directory entry for ${ServicePrincipals.audit}: the ledger's channel epochs cannot be verified`);
  throw new BulwarkError('E_SOC_CHANNEL', `${ServicePrincipals.audit}'s directory entry is version ${genesis.keyVersion}, not its genesis key: set BULWARK_LEDGER_PUBLIC_KEY or keep audit-ledger.vkey in the key directory`);
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}
