import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '@bulwark/errors';
import {
  checkTool,
  createWellKnownResponse,
  fetchDiscovery,
  fetchDnsTxt,
  isFingerprint,
  KeyPinStore,
  loadPrivateKey,
  parseDiscovery,
  parseJsonBytes,
  parseRevocationDocument,
  parseSignedTool,
  parseTxtRecord,
  publicPemOf,
  reviewSchema,
  SchemaPinError,
  signSchema,
  signSkill,
  verifySkillOffline,
  type DnsTxtRecord,
  type JsonValue,
  type PinMode,
  type RevocationDocument,
  type SignedTool,
  type ToolCheck,
} from '@bulwark/schemapin';
import type { ToolsAdmin } from '@bulwark/client';
import { isBulwarkError } from '@bulwark/errors';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { connectClient, type AdminConnectOptions } from './policy-admin.js';

export interface ToolsAdminDeps {
  /** Opens an encrypted session client to the schemapin service; injectable so tests bring their own. */
  readonly connect: (io: CommandIO, options: AdminConnectOptions) => Promise<{ admin: ToolsAdmin; close(): Promise<void> }>;
}

const defaultDeps: ToolsAdminDeps = {
  connect: async (io, options) => {
    const { client, close } = await connectClient(io, options, 'bulwark-tools-admin');
    return { admin: client.toolsAdmin, close };
  },
};

interface AdminOptions {
  readonly as?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
  readonly json?: boolean;
}

// The service's refusals that are the caller's input: exit 2.
const ADMIN_INPUT_CODES = new Set(['E_TOOLS_REQUEST', 'E_TOOLS_REVIEW', 'E_TOOLS_PIN_CONFLICT', 'E_TOOLS_KEY_REVOKED', 'E_TOOLS_FORBIDDEN']);

async function withToolsAdmin(io: CommandIO, deps: ToolsAdminDeps, o: AdminOptions, fn: (admin: ToolsAdmin) => Promise<unknown>, show: (reply: unknown) => string): Promise<number> {
  const as = o.as ?? io.env['BULWARK_PRINCIPAL'];
  if (as === undefined || as === '') throw new InputError('E_USAGE', 'bulwark tools: name the administrator with --as <principal> or $BULWARK_PRINCIPAL');
  const connection = await deps.connect(io, {
    as,
    ...(o.nats === undefined ? {} : { nats: o.nats }),
    ...(o.namespace === undefined ? {} : { namespace: o.namespace }),
    ...(o.file === undefined ? {} : { file: o.file }),
  });
  try {
    const reply = await fn(connection.admin);
    io.stdout(o.json ? `${JSON.stringify(reply)}\n` : show(reply));
    return ExitCode.ok;
  } catch (e) {
    if (isBulwarkError(e) && ADMIN_INPUT_CODES.has(e.code)) throw new InputError(e.code, e.message, e.context, { cause: e });
    throw e;
  } finally {
    await connection.close();
  }
}

function showPending(reply: unknown): string {
  const pending = (reply as { pending: { id: string; kind: string; toolId: string; domain: string; review: { recommendation: string; risk_score: number; findings: { severity: string; rule_id: string }[] }; lineage?: string }[] }).pending;
  if (pending.length === 0) return 'no tool waits for review\n';
  return pending
    .map((p) => `${p.id}  ${p.kind}  ${p.toolId}@${p.domain}  ${p.review.recommendation} (risk ${p.review.risk_score})${p.lineage ? `  lineage ${p.lineage}` : ''}\n${p.review.findings.map((f) => `    ${f.severity} ${f.rule_id}\n`).join('')}`)
    .join('');
}

interface VerifyOptions {
  readonly schema?: string;
  readonly signature?: string;
  readonly signed?: string;
  readonly skill?: string;
  readonly domain: string;
  readonly toolId?: string;
  readonly discovery?: string;
  readonly revocation?: string;
  readonly pins?: string;
  readonly mode: string;
  readonly pinContent?: boolean;
  readonly dnsTxt?: string;
  readonly dnsServer?: string[];
  readonly ca?: string;
  readonly timeout: string;
  readonly json?: boolean;
}

const MAX_FILE_BYTES = 4 * 1024 * 1024;

function readJson(io: CommandIO, path: string, what: string): JsonValue {
  const absolute = resolve(io.cwd, path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(absolute);
  } catch (err) {
    throw new InputError('E_TOOLS_FILE', `${what} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { path });
  }
  return parseJsonBytes(bytes, `${what} ${path}`, { maxBytes: MAX_FILE_BYTES });
}

/** Where the signed tool comes from: `--signed F`, or `--schema F` with `--signature S|FILE`. */
function signedToolFrom(io: CommandIO, o: VerifyOptions): SignedTool {
  if (o.signed !== undefined) {
    if (o.schema !== undefined || o.signature !== undefined) throw new InputError('E_TOOLS_USAGE', 'give either --signed F, or --schema F with --signature S, not both');
    return parseSignedTool(readJson(io, o.signed, 'signed tool'), `signed tool ${o.signed}`);
  }
  if (o.schema === undefined || o.signature === undefined) throw new InputError('E_TOOLS_USAGE', 'tools verify needs --signed F, or --schema F with --signature S');
  const sigPath = resolve(io.cwd, o.signature);
  const signature = existsSync(sigPath) ? readFileSync(sigPath, 'utf8').trim() : o.signature;
  return { schema: readJson(io, o.schema, 'schema'), signature };
}

function mode(value: string): PinMode {
  if (value === 'automatic' || value === 'interactive' || value === 'strict') return value;
  throw new InputError('E_TOOLS_USAGE', `--mode ${value}: expected automatic, interactive or strict`);
}

function loadPins(io: CommandIO, path: string | undefined): KeyPinStore {
  if (path === undefined || !existsSync(resolve(io.cwd, path))) return new KeyPinStore();
  return KeyPinStore.fromObject(readJson(io, path, 'pin store'), `pin store ${path}`);
}

/** Written to a temporary file then renamed, so a crash never leaves half a pin store. */
function savePins(io: CommandIO, path: string, pins: KeyPinStore): void {
  const absolute = resolve(io.cwd, path);
  const temporary = join(dirname(absolute), `.${process.pid}.${Date.now()}.pins.tmp`);
  writeFileSync(temporary, `${JSON.stringify(pins.toObject(), null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, absolute);
}

async function discoveryFor(io: CommandIO, o: VerifyOptions): Promise<{ discovery: unknown; revocation: RevocationDocument | null }> {
  const revocationFile = o.revocation === undefined ? null : parseRevocationDocument(readJson(io, o.revocation, 'revocation document'));
  if (o.discovery !== undefined) return { discovery: readJson(io, o.discovery, 'discovery document'), revocation: revocationFile };
  const ca = o.ca === undefined ? undefined : readFileSync(resolve(io.cwd, o.ca), 'utf8');
  const fetched = await fetchDiscovery(o.domain, { timeoutMs: Number(o.timeout), ...(ca === undefined ? {} : { ca }) });
  return { discovery: parseDiscovery(fetched.discovery), revocation: revocationFile ?? fetched.revocation };
}

async function dnsFor(o: VerifyOptions): Promise<DnsTxtRecord | null> {
  if (o.dnsTxt !== undefined) return parseTxtRecord(o.dnsTxt);
  if (o.dnsServer !== undefined && o.dnsServer.length > 0) return fetchDnsTxt(o.domain, { servers: o.dnsServer, timeoutMs: Number(o.timeout) });
  return null;
}

function printResult(io: CommandIO, json: boolean | undefined, name: string, out: Record<string, unknown>): void {
  if (json) {
    io.stdout(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  if (out.valid === true) {
    const warnings = (out.warnings as string[] | undefined) ?? [];
    io.stdout(`valid: ${name} (key ${String(out.key_fingerprint)}, ${String(out.key_pinning_status)})${warnings.length > 0 ? `; warnings: ${warnings.join('; ')}` : ''}\n`);
  } else {
    io.stdout(`invalid: ${name}: ${String(out.error_code)}: ${String(out.error_message)}\n`);
  }
}

function failed(domain: string, err: SchemaPinError): Record<string, unknown> {
  return { valid: false, domain, error_code: err.errorCode, error_message: err.message, key_pinning_status: null, warnings: [] };
}

async function verifyCommand(io: CommandIO, o: VerifyOptions): Promise<number> {
  if (o.skill !== undefined) return verifySkillCommand(io, o);
  if (o.toolId === undefined) throw new InputError('E_TOOLS_USAGE', 'tools verify needs --tool-id T');
  const toolId = o.toolId;
  const signed = signedToolFrom(io, o);
  const pins = loadPins(io, o.pins);
  const name = `${toolId}@${o.domain}`;
  let check: ToolCheck;
  try {
    const { discovery, revocation } = await discoveryFor(io, o);
    const dnsTxt = await dnsFor(o);
    check = checkTool(pins, { toolId, domain: o.domain, signed, discovery, revocation, mode: mode(o.mode), pinContent: o.pinContent === true, verify: { dnsTxt } });
  } catch (err) {
    if (!(err instanceof SchemaPinError)) throw err;
    printResult(io, o.json, name, failed(o.domain, err));
    return ExitCode.negative;
  }
  const r = check.result;
  const out: Record<string, unknown> = {
    ...r,
    error_code: r.error_code ?? null,
    key_pinning_status: r.key_pinning?.status ?? null,
    warnings: r.warnings ?? [],
    verdict: check.verdict,
    content_hash: check.contentHash,
    schema_hash: check.schemaHash,
    ...(check.lineage === undefined ? {} : { lineage: check.lineage }),
  };
  // Only a successful verification writes the pin store (interactive first use waits for `tools approve`).
  if (o.pins !== undefined && check.verdict === 'Trusted' && check.newPin !== null) {
    pins.set(toolId, o.domain, check.newPin);
    savePins(io, o.pins, pins);
  }
  printResult(io, o.json, name, out);
  return check.verdict === 'Trusted' ? ExitCode.ok : ExitCode.negative;
}

async function verifySkillCommand(io: CommandIO, o: VerifyOptions): Promise<number> {
  const pins = loadPins(io, o.pins);
  let out: Record<string, unknown>;
  try {
    const { discovery, revocation } = await discoveryFor(io, o);
    const dnsTxt = await dnsFor(o);
    const r = verifySkillOffline(resolve(io.cwd, o.skill!), discovery, { revocation, pinStore: pins, dnsTxt, ...(o.toolId === undefined ? {} : { toolId: o.toolId }) });
    out = { ...r, error_code: r.error_code ?? null, key_pinning_status: r.key_pinning?.status ?? null, warnings: r.warnings ?? [] };
  } catch (err) {
    if (!(err instanceof SchemaPinError)) throw err;
    out = failed(o.domain, err);
  }
  if (out.valid === true && o.pins !== undefined) savePins(io, o.pins, pins);
  printResult(io, o.json, `skill ${o.skill}`, out);
  return out.valid === true ? ExitCode.ok : ExitCode.negative;
}

interface SignOptions {
  readonly schema?: string;
  readonly wellKnown?: boolean;
  readonly skill?: string;
  readonly key: string;
  readonly out?: string;
  readonly domain?: string;
  readonly developer?: string;
  readonly contact?: string;
  readonly revoked?: string[];
  readonly revocationEndpoint?: string;
  readonly schemaVersion?: string;
  readonly previousHash?: string;
  readonly expiresAt?: string;
}

function signCommand(io: CommandIO, o: SignOptions): number {
  const modes = [o.schema !== undefined, o.wellKnown === true, o.skill !== undefined].filter(Boolean).length;
  if (modes !== 1) throw new InputError('E_TOOLS_USAGE', 'tools sign needs exactly one of --schema F, --well-known, --skill DIR');
  let keyPem: string;
  try {
    keyPem = readFileSync(resolve(io.cwd, o.key), 'utf8');
  } catch (err) {
    throw new InputError('E_TOOLS_FILE', `key ${o.key}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  if (o.schema !== undefined) {
    doc = signSchema(readJson(io, o.schema, 'schema'), keyPem, {
      ...(o.expiresAt === undefined ? {} : { expiresAt: o.expiresAt }),
      ...(o.schemaVersion === undefined ? {} : { schemaVersion: o.schemaVersion }),
      ...(o.previousHash === undefined ? {} : { previousHash: o.previousHash }),
    });
  } else if (o.wellKnown) {
    if (o.developer === undefined) throw new InputError('E_TOOLS_USAGE', 'tools sign --well-known needs --developer NAME');
    for (const fp of o.revoked ?? []) if (!isFingerprint(fp)) throw new InputError('E_TOOLS_USAGE', `--revoked ${fp}: not a sha256:<64 hex> fingerprint`);
    doc = createWellKnownResponse(publicPemOf(loadPrivateKey(keyPem)), o.developer, o.contact, o.revoked, '1.2', o.revocationEndpoint);
  } else {
    if (o.domain === undefined) throw new InputError('E_TOOLS_USAGE', 'tools sign --skill needs --domain D');
    signSkill(resolve(io.cwd, o.skill!), keyPem, o.domain);
    io.stdout(`wrote ${join(o.skill!, '.schemapin.sig')}\n`);
    return ExitCode.ok;
  }
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (o.out === undefined) io.stdout(text);
  else writeFileSync(resolve(io.cwd, o.out), text);
  return ExitCode.ok;
}

interface ScanOptions {
  readonly json?: boolean;
  readonly threshold?: string;
  readonly domain?: string;
}

/** The tools a file holds: one schema, a signed tool, an array, or an MCP `tools/list` result. */
function toolsIn(value: JsonValue): JsonValue[] {
  if (Array.isArray(value)) return value.map((v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && 'signature' in v && 'schema' in v ? (v.schema as JsonValue) : v));
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    if (Array.isArray(value.tools)) return value.tools;
    if ('schema' in value && 'signature' in value) return [value.schema as JsonValue];
  }
  return [value];
}

function scanCommand(io: CommandIO, file: string, o: ScanOptions): number {
  const tools = toolsIn(readJson(io, file, 'tool file'));
  const threshold = o.threshold === undefined ? undefined : Number(o.threshold);
  if (threshold !== undefined && !(threshold >= 0 && threshold <= 1)) throw new InputError('E_TOOLS_USAGE', `--threshold ${o.threshold}: expected a number from 0 to 1`);
  const results = tools.map((tool) => {
    const name = tool !== null && typeof tool === 'object' && !Array.isArray(tool) && typeof tool.name === 'string' ? tool.name : '(unnamed)';
    return { name, ...reviewSchema(tool, { ...(threshold === undefined ? {} : { reviewThreshold: threshold }), ...(o.domain === undefined ? {} : { domain: o.domain }) }) };
  });
  if (o.json) io.stdout(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  else {
    for (const r of results) {
      io.stdout(`${r.name}: ${r.recommendation} (risk ${r.risk_score}, ${r.findings.length} finding(s))\n`);
      for (const f of r.findings) io.stdout(`  ${f.severity.padEnd(8)} ${f.rule_id} ${f.atlas} at ${f.where}: ${f.title}: ${f.excerpt}\n`);
    }
  }
  return results.every((r) => r.recommendation === 'approve') ? ExitCode.ok : ExitCode.negative;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `bulwark tools verify|sign|scan|review|approve|reject` (libs/cli README "bulwark tools"). */
export function createToolsCommand(deps: ToolsAdminDeps = defaultDeps): RegisterCommand {
  return (program, io, setExitCode) => {
    const tools = program.command('tools').description('SchemaPin: verify signed tool schemas, sign them, scan them for tool poisoning; review, approve, reject in the running service');
    const admin = (cmd: ReturnType<typeof tools.command>) =>
      cmd
        .option('--as <principal>', 'the administrator principal to act as (default $BULWARK_PRINCIPAL)')
        .option('--nats <url>', 'NATS server (default: nats.url, $NATS_URL)')
        .option('--namespace <ns>', 'subject and stream namespace (tests, parallel deployments)')
        .option('--file <path>', 'configuration file')
        .option('--json', 'print the reply as JSON');
    admin(tools.command('review').description('list the tools waiting for a person: submissions over the risk threshold, interactive first uses, changed tools')).action(async (o: AdminOptions) =>
      setExitCode(await withToolsAdmin(io, deps, o, (a) => a.review(), showPending)),
    );
    admin(tools.command('approve').description('approve a pending review: pin the verified key and content, or sign our submission (ledger events)').argument('<review-id>')).action(async (id: string, o: AdminOptions) =>
      setExitCode(await withToolsAdmin(io, deps, o, (a) => a.approve(id), (r) => `approved ${id}: ${String((r as { status?: string }).status)}\n`)),
    );
    admin(tools.command('reject').description('reject a pending review (a tools.rejected event); the tool stays blocked').argument('<review-id>')).action(async (id: string, o: AdminOptions) =>
      setExitCode(await withToolsAdmin(io, deps, o, (a) => a.reject(id), () => `rejected ${id}\n`)),
    );
    tools
      .command('verify')
      .description("verify a signed tool schema (or skill folder) as the SchemaPin SDK does; exit 0 only when valid. Prints the SDK's result fields with --json")
      .option('--schema <file>', 'the tool schema (JSON)')
      .option('--signature <b64|file>', 'the base64 signature, or a file holding it')
      .option('--signed <file>', 'a signed tool { schema, signature, signed_at?, expires_at?, canonicalization?, previous_hash? }')
      .option('--skill <dir>', 'verify a skill folder and its .schemapin.sig instead of a schema')
      .requiredOption('--domain <domain>', "the tool provider's domain")
      .option('--tool-id <id>', 'the tool id (pins are keyed <tool_id>@<domain>)')
      .option('--discovery <file>', 'the .well-known/schemapin.json document (default: fetched over HTTPS from the domain)')
      .option('--revocation <file>', 'a standalone revocation document (default: the discovery revocation_endpoint, when fetched)')
      .option('--pins <file>', 'pin store { "<tool_id>@<domain>": "sha256:<fp>" | { fingerprint, content_hash } }; updated only on success')
      .option('--mode <mode>', 'pinning mode: automatic | interactive | strict', 'automatic')
      .option('--pin-content', 'also pin the content hash of new pins (a later change under the same key is tool_changed)')
      .option('--dns-txt <value>', 'the _schemapin.<domain> TXT value to cross-check')
      .option('--dns-server <addr>', 'look the TXT record up on this resolver (ip or ip:port; repeatable)', collect)
      .option('--ca <file>', 'extra CA certificate (PEM) for the discovery fetch')
      .option('--timeout <ms>', 'discovery and DNS timeout', '5000')
      .option('--json', 'print the result fields as JSON')
      .action(async (options: VerifyOptions) => setExitCode(await verifyCommand(io, options)));
    tools
      .command('sign')
      .description('sign a tool schema, write a discovery document, or sign a skill folder, as the SchemaPin SDK does')
      .requiredOption('--key <file>', 'ECDSA P-256 private key (PKCS#8 PEM)')
      .option('--schema <file>', 'sign this schema; prints { schema, signature, signed_at, ... }')
      .option('--well-known', 'print the .well-known/schemapin.json document for the key')
      .option('--skill <dir>', 'sign this skill folder (writes .schemapin.sig)')
      .option('--domain <domain>', 'signing domain (skills)')
      .option('--developer <name>', 'developer_name (discovery)')
      .option('--contact <text>', 'contact (discovery)')
      .option('--revoked <fingerprint>', 'a revoked key fingerprint (discovery; repeatable)', collect)
      .option('--revocation-endpoint <url>', 'revocation_endpoint (discovery)')
      .option('--schema-version <v>', 'schema_version of the signed tool (lineage)')
      .option('--previous-hash <sha256:hex>', 'previous_hash: the schema hash of the version this one replaces')
      .option('--expires-at <rfc3339>', 'expires_at of the signature')
      .option('--out <file>', 'write here instead of standard output')
      .action((options: SignOptions) => setExitCode(signCommand(io, options)));
    tools
      .command('scan')
      .description('review tool schemas locally for tool poisoning, shadowing, risky parameters, resource use and privacy; exit 1 unless every tool is approved')
      .argument('<file>', 'a tool schema, a signed tool, an array of tools, or a tools/list result { tools: [...] }')
      .option('--threshold <score>', 'risk score at which a human must review (0-1, default 0.3)')
      .option('--domain <domain>', 'the provider of these tools')
      .option('--json', 'print findings, risk_score and recommendation as JSON')
      .action((file: string, options: ScanOptions) => setExitCode(scanCommand(io, file, options)));
  };
}

export const registerToolsCommand: RegisterCommand = createToolsCommand();
