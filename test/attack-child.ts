// A Bulwark service instance in its own process, for tests that SIGKILL it:
//   node --import tsx test/attack-child.ts rpc-server    (policy RPC server in the queue group)
//   node --import tsx test/attack-child.ts consumer      (durable stream consumer that dedupes by event id in PostgreSQL)
//   node --import tsx test/attack-child.ts incident-response (the incident service, the shipped rules, state from the ledger)
// Keys and directory arrive in the CHILD_CONFIG environment variable (hex); the child prints
// one `ready <id>` line once it serves, then runs until it is killed or told to stop on stdin.
// Imports resolve to the packages' built dist/ (npm test builds first).
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, TrustedDirectory, type LocalIdentity } from '@bulwark/envelope';
import { Commands, connectBus, RejectionReporter, serveCommands, startStreamConsumer, type Namespace } from '@bulwark/bus';

export interface ChildConfig {
  readonly natsUrl: string;
  readonly namespace: Namespace;
  readonly rootPublicKey: string;
  /** Signed directory entries (encodeSignedDirectoryEntry bytes), hex. */
  readonly entries: readonly string[];
  readonly self: { readonly id: string; readonly secretKey: string; readonly publicKey: string };
  /** consumer only */
  readonly databaseUrl?: string;
  readonly schema?: string;
  readonly durable?: string;
  /** consumer only: after the side effect of this event id commits, SIGKILL this process before the ack. */
  readonly killAfter?: string;
  /** incident-response only: the ledger's Ed25519 public key (hex) and the enrolled analysts. */
  readonly ledgerPublicKey?: string;
  readonly analysts?: readonly string[];
}

const role = process.argv[2];
const config = JSON.parse(process.env['CHILD_CONFIG'] ?? '') as ChildConfig;
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const provider = createCryptoProvider('node');
const directory = new TrustedDirectory({ provider, rootPublicKey: hex(config.rootPublicKey) });
for (const entry of config.entries) {
  const verdict = directory.put(hex(entry));
  if (!verdict.ok) throw new Error(`child: directory refused an entry: ${verdict.reason}`);
}
const self: LocalIdentity = { id: config.self.id, x25519: { secretKey: hex(config.self.secretKey), publicKey: hex(config.self.publicKey) } };
const silent = new RejectionReporter({ reporter: self.id, publish: async () => undefined });
const bus = await connectBus({ url: config.natsUrl, name: `${role}-${process.pid}`, namespace: config.namespace });

switch (role) {
  case 'rpc-server': {
    const server = await serveCommands(bus, {
      service: 'policy',
      version: '1.0.0',
      sessions: { provider, self, directory },
      rejections: silent,
      handlers: { [Commands.policy.evaluate]: async (req) => new TextEncoder().encode(`${server.instanceId}:${new TextDecoder().decode(req.body)}`) },
    });
    process.stdout.write(`ready ${server.instanceId}\n`);
    break;
  }
  case 'consumer': {
    const db = new pg.Client({ connectionString: config.databaseUrl });
    await db.connect();
    const schema = config.schema!;
    await startStreamConsumer(
      bus,
      new SealedReceiver({ provider, self, directory, skewMs: 3_600_000 }),
      { stream: 'events', durable: config.durable!, filterSubject: 'bulwark.evt.policy.>', ackWaitMs: 1_000 },
      async (delivery) => {
        const eventId = delivery.msgId!;
        // The side effect and the dedupe record commit together, as the ledger appends an event
        // and its unique event id in one transaction: a redelivery finds the id and does nothing.
        await db.query('begin');
        try {
          const inserted = await db.query(`insert into ${schema}.processed (event_id, pid) values ($1, $2) on conflict (event_id) do nothing`, [eventId, process.pid]);
          const outcome = inserted.rowCount === 1 ? 'processed' : 'deduped';
          if (outcome === 'processed') await db.query(`update ${schema}.effects set total = total + 1`);
          await db.query(`insert into ${schema}.deliveries (event_id, pid, delivery_count, outcome) values ($1, $2, $3, $4)`, [eventId, process.pid, delivery.deliveryCount, outcome]);
          await db.query('commit');
        } catch (e) {
          await db.query('rollback');
          throw e;
        }
        // Crash after the side effect committed, before the bus acknowledges the message.
        if (eventId === config.killAfter) process.kill(process.pid, 'SIGKILL');
      },
      silent,
    );
    process.stdout.write(`ready ${process.pid}\n`);
    break;
  }
  case 'incident-response': {
    // Loaded only for this role: the others start without the incident service's modules.
    const { DEFAULT_RULES_FILE, loadRules, startIncidentService } = await import('@bulwark/incident-response');
    const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
    // Started once the ledger is replayed (the state rebuilt, what is left to do scheduled).
    await startIncidentService({ bus, provider, identity: self, directory, ledgerPublicKey: hex(config.ledgerPublicKey!), rules, analysts: config.analysts ?? [] });
    process.stdout.write(`ready ${process.pid}\n`);
    break;
  }
  default:
    throw new Error(`child: unknown role ${String(role)}`);
}

// A parent that wants a graceful end closes our stdin.
process.stdin.resume();
process.stdin.on('end', () => {
  void bus.close().finally(() => process.exit(0));
});
