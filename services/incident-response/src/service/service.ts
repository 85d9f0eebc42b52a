import {
  CommandClient,
  createEventPublisher,
  createRejectionReporter,
  ensureStreams,
  Events,
  LEDGER_PRINCIPAL,
  serveCommands,
  type Bus,
  type CommandServer,
  type StreamSpec,
} from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { principalKeyring } from '@bulwark/channel';
import { ChannelReceiver, isValidId, SealedOrChannelReceiver, SealedReceiver, SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import { encodeEvent } from '@bulwark/events';
import { LedgerKeys, startLedgerReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';
import type { Rule } from '../rules/load.js';
import { SocPublisher } from '../soc/publisher.js';
import type { WebhookOptions } from '../soc/webhook.js';
import { incidentHandlers } from './handlers.js';
import { IncidentState, type ActionKind } from './state.js';
import { Workflow } from './workflow.js';
import type { SecurityEvent } from '../incidents/security-event.js';


export interface IncidentServiceOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /**
   * svc.incident-response: the ledger seals its full batches to this principal (SYMBIONT_LEDGER_REPUBLISH_TO).
   * The live object (service-host `rotatesOwnKeys` switches it in place): every sender, session
   * and the channel key ring read it at each use, never a copy.
   */
  readonly identity: LocalIdentity & { readonly version?: number };
  /**
   * Its own X25519 public key of each version its key store holds (a version made by `bulwark
   * init` is in no key fact of the ledger): with the ledger's key facts, which held key opens an
   * epoch wrapped to that version.
   */
  readonly ownKeyVersions?: (keyVersion: number) => Uint8Array | undefined;
  readonly directory: Directory;
  readonly ledgerPublicKey: Uint8Array;
  readonly rules: readonly Rule[];
  /** Enrolled analysts (principal ids) who may call the incident commands (with the SOC channel's analyst subscribers), and without `socChannel` receive the SOC stream sealed to each. */
  readonly analysts: readonly string[];
  readonly webhook?: WebhookOptions;
  /** BULWARK_LEDGER's channel (the ledger's SYMBIONT_LEDGER_CHANNEL): its full batches are read as a subscriber once its first epoch is announced. */
  readonly ledgerChannel?: string;
  /** The SOC stream's channel: findings go out once, under its current epoch, once the key manager announced it. */
  readonly socChannel?: string;
  readonly streams?: readonly StreamSpec[];
  readonly bootTimeoutMs?: number;
  readonly maxAttempts?: number;
  readonly retryBaseMs?: number;
  readonly logger?: Logger;
  readonly onAction?: (incident: SecurityEvent, action: ActionKind, detail: string) => void;
}

export interface IncidentService {
  readonly state: IncidentState;
  readonly workflow: Workflow;
  halted(): ReaderHaltedError | undefined;
  /**
   * After its own identity was switched to a new version: drops the command sessions made under
   * the old keys and opens the channel epochs announced for the new version before the switch.
   */
  keysRotated(): void;
  stop(): Promise<void>;
}

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * Starts the incident response service (DESIGN §7): the ledger read in full through the verified
 * reader, every event through the detectors, the workflow once the replay caught up, the
 * incident commands for analysts.
 */
export async function startIncidentService(options: IncidentServiceOptions): Promise<IncidentService> {
  const { bus, provider, identity, directory, logger } = options;
  for (const [name, id] of [['ledgerChannel', options.ledgerChannel], ['socChannel', options.socChannel]] as const) {
    if (id !== undefined && !isValidId(id)) throw new InputError('E_CONFIG', `incident-response: ${name} '${id.slice(0, 80)}' is not a channel id (1-128 of A-Z a-z 0-9 . _ : @ -)`, { name });
  }
  await ensureStreams(bus, options.streams);
  const events = createEventPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL }));
  const rejections = createRejectionReporter(events, { reporter: identity.id });
  // The key manager's facts from the ledger this service reads in full: every peer (callers, the
  // analysts it seals incidents to) is judged by them too, not by the bucket alone (issue 12).
  // The reader and the receivers of the ledger's own frames keep the bare directory.
  const keys = new LedgerKeys();
  const peers = keys.guard(directory);
  const sessions = { provider, self: identity, directory: peers };
  const commands = new CommandClient(bus, { sessions, rejections });
  const client = createBulwarkClient({ bus, sessions, rejections, adminTimeoutMs: 10_000 });
  const ports = { client, commands };
  const state = new IncidentState(options.rules);
  // Epoch keys from the ledger this service reads in full (the announcements are ledger events).
  const ledgerChannel = options.ledgerChannel === undefined ? undefined : new ChannelReceiver({ provider, directory, channelId: options.ledgerChannel, keepHistory: true, staleAfterMs: TEN_YEARS_MS });
  const channels = [options.ledgerChannel, options.socChannel].filter((c): c is string => c !== undefined);
  // Each epoch opened with the key held for the version it was wrapped to: the ledger's key facts
  // (else its own key store) say which public key each of its versions is (a restart after a rotation replays epochs
  // wrapped to its earlier versions, opened with `previousX25519`).
  const versionKey = (v: number): Uint8Array | undefined => {
    const x = keys.book.key(identity.id)?.versions.find((k) => k.version === v)?.keys.x25519;
    return x === undefined ? options.ownKeyVersions?.(v) : new Uint8Array(Buffer.from(x, 'base64'));
  };
  const keyring = channels.length === 0 ? undefined : principalKeyring({ provider, identity, directory, channels, versionKey, onEpoch: (key) => (key.channelId === options.ledgerChannel ? ledgerChannel?.install(key) : undefined) });
  // The analysts: those named, and the SOC channel's analyst subscribers now (the ledger's epochs: one
  // added is an analyst from its epoch on, one revoked no more), each with a valid directory entry.
  const socAnalysts = () => (options.socChannel === undefined ? [] : (keyring!.lastAnnouncement(options.socChannel)?.subscribers ?? []).map((s) => s.id).filter((id) => id.startsWith('analyst.')));
  const analysts = () => [...new Set([...options.analysts, ...socAnalysts()])].filter((a) => peers.lookup(a) !== undefined);
  const soc = new SocPublisher({ bus, provider, identity, directory: peers, analysts, ...(options.socChannel === undefined ? {} : { channel: { id: options.socChannel, keyring: keyring! } }) });
  const workflow = new Workflow({
    state,
    events,
    soc,
    ports,
    ...(options.webhook === undefined ? {} : { webhook: options.webhook }),
    ...(logger === undefined ? {} : { logger }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
    ...(options.retryBaseMs === undefined ? {} : { retryBaseMs: options.retryBaseMs }),
    ...(options.onAction === undefined ? {} : { onAction: options.onAction }),
  });
  let halted: ReaderHaltedError | undefined;
  const sealedToSelf = new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS });
  const reader = await startLedgerReader({
    bus,
    provider,
    identity,
    directory,
    receiver: ledgerChannel === undefined ? sealedToSelf : new SealedOrChannelReceiver(sealedToSelf, ledgerChannel),
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${identity.id}/incidents`,
    mode: 'full',
    durablePrefix: 'incidents',
    rejections,
    keys,
    ...(logger === undefined ? {} : { logger }),
    onEvent: (event) => {
      // An epoch wrapped to a version it holds no key for is unreadable, never a halt: reported, and
      // retried at its next switch (keysRotated); its frames are refused until then.
      if (keyring?.apply(event) === 'unreadable') logger?.warn({ seq: event.seq, channels }, 'a channel epoch wrapped to this service could not be opened with the keys it holds');
      workflow.onChanges(state.apply(event));
    },
    onHalt: (h) => {
      // Fail secure: nothing after the bad event is believed; what was detected before stays.
      halted = h;
      logger?.fatal({ code: h.code, seq: h.seq, problem: h.problem }, 'incident ledger reader halted: no further detection until restarted on a ledger it can verify');
    },
    raise: (event) => events.publish({ subject: Events.security.violation, eventId: event.eventId, payload: encodeEvent(event) }),
  });
  try {
    await reader.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await reader.stop();
    throw e;
  }
  workflow.goLive();
  logger?.info({ applied: state.applied, incidents: state.all().length, rules: options.rules.length }, 'incident state rebuilt from the ledger');
  let server: CommandServer;
  try {
    server = await serveCommands(bus, { service: 'incident', version: '0.1.0', rejections, sessions, handlers: incidentHandlers({ state, workflow, soc, ports, analysts }) });
  } catch (e) {
    await workflow.stop();
    await reader.stop();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    state,
    workflow,
    halted: () => halted,
    keysRotated() {
      commands.reset();
      client.reset();
      const opened = keyring?.retryUnreadable() ?? 0;
      logger?.info({ version: identity.version, opened }, 'incident-response: identity switched; sessions dropped');
    },
    stop() {
      stopping ??= (async () => {
        await server.stop();
        await workflow.stop();
        await reader.stop();
      })();
      return stopping;
    },
  };
}
