import { z } from 'zod';

/** Where a value was written: an environment variable (bare text) or the TOML file (typed). */
export type ValueForm = 'env' | 'file';

/** An environment variable that sets one setting. */
export interface EnvBinding {
  readonly name: string;
  /** Turns the variable's text into a candidate for the setting's schema; text it cannot read is returned unchanged, so the schema rejects it. */
  readonly parse: (raw: string) => unknown;
  /** What the variable accepts, when that differs from what the setting accepts. */
  readonly expected?: string;
}

/**
 * One configuration value: how it is validated, its strict default, what a person may
 * write, and the environment variable that overrides it. `path` values are resolved
 * against the directory of the file that set them (or the working directory); `url`
 * values may carry credentials and are redacted whenever they are shown.
 */
export interface Setting<T> {
  readonly schema: z.ZodType<T>;
  readonly fallback: T;
  readonly expected: (form: ValueForm) => string;
  readonly kind: 'plain' | 'path' | 'url';
  readonly env?: EnvBinding;
}

function oneOf<const V extends readonly [string, ...string[]]>(values: V, fallback: V[number], env?: string): Setting<V[number]> {
  return {
    schema: z.enum(values),
    fallback,
    expected: (form) => `one of: ${values.map((v) => (form === 'file' ? JSON.stringify(v) : v)).join(', ')}`,
    kind: 'plain',
    ...(env === undefined ? {} : { env: { name: env, parse: (raw: string) => raw } }),
  };
}

function readBoolean(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  return raw;
}

function flag(fallback: boolean, env?: string): Setting<boolean> {
  return {
    schema: z.boolean(),
    fallback,
    expected: () => 'one of: true, false',
    kind: 'plain',
    ...(env === undefined ? {} : { env: { name: env, parse: readBoolean } }),
  };
}

function integer(min: number, max: number, fallback: number, env?: string): Setting<number> {
  return {
    schema: z.int().min(min).max(max),
    fallback,
    expected: () => `an integer from ${min} to ${max}`,
    kind: 'plain',
    ...(env === undefined ? {} : { env: { name: env, parse: (raw: string) => (/^\d+$/.test(raw) ? Number(raw) : raw) } }),
  };
}

function path(fallback: string | undefined, env: string): Setting<string | undefined> {
  return {
    schema: z.string().min(1),
    fallback,
    expected: () => 'a non-empty path',
    kind: 'path',
    env: { name: env, parse: (raw) => raw },
  };
}

function list(item: z.ZodString, what: string, env: string): Setting<readonly string[]> {
  return {
    schema: z.array(item),
    fallback: [],
    expected: (form) => (form === 'file' ? `a list of ${what}` : `${what}, separated by commas`),
    kind: 'plain',
    env: { name: env, parse: (raw: string) => raw.split(',').map((part) => part.trim()).filter((part) => part !== '') },
  };
}

// A request path as the decision log masks it: member names joined by dots (`context.user.ssn`).
const DOTTED_PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;
const PRINCIPAL_ID = /^(?:agent|svc|analyst)\.[A-Za-z0-9][A-Za-z0-9._:@/+-]*$/;

function hasProtocol(text: string, protocols: readonly string[]): boolean {
  if (!URL.canParse(text)) return false;
  return protocols.includes(new URL(text).protocol);
}

/** `pglite:memory` or `pglite:<dir>` (not `pglite://…`, which reads like a host). */
function isPgliteUrl(text: string): boolean {
  return text.startsWith('pglite:') && !text.startsWith('pglite://');
}

/** 32 bytes as 64 hex digits or as padded base64 (44 characters); @bulwark/keystore `parseRootPublicKey` decodes it. */
function isPublicKeyText(text: string): boolean {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return true;
  return /^[A-Za-z0-9+/]{43}=$/.test(text) && Buffer.from(text, 'base64').toString('base64') === text;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

const natsProtocols = ['nats:', 'tls:', 'ws:', 'wss:'];
const postgresProtocols = ['postgres:', 'postgresql:'];

/**
 * Every setting, by TOML table and key. The `[security]` and `[tofu]` keys and the
 * `SYMBIONT_*` variables are the seed's (S8.3, S8.4); each default is the strict choice
 * (deny, gVisor, audit on, TOFU on, emergency override off).
 */
export const settings = {
  security: {
    crypto_provider: oneOf(['auto', 'sodium', 'node', 'noble'], 'auto', 'SYMBIONT_CRYPTO_PROVIDER'),
    signature_algorithm: oneOf(['ed25519'], 'ed25519'),
    encryption_algorithm: oneOf(['chacha20_poly1305', 'aes_256_gcm'], 'chacha20_poly1305'),
    key_rotation_interval_days: integer(1, 3650, 90),
    hsm_enabled: {
      ...flag(false),
      // The seed names the key store by type in the environment and by a flag in the file.
      env: {
        name: 'SYMBIONT_KEY_STORE_TYPE',
        parse: (raw: string): unknown => (raw === 'hsm' ? true : raw === 'file' ? false : raw),
        expected: 'one of: file, hsm',
      },
    },
    hsm_config_path: path(undefined, 'SYMBIONT_HSM_CONFIG_PATH'),
    audit_enabled: flag(true, 'SYMBIONT_AUDIT_ENABLED'),
    audit_storage_path: path('.bulwark/audit', 'SYMBIONT_AUDIT_STORAGE'),
    // HIPAA keeps audit records six years (45 CFR 164.316(b)(2)).
    audit_retention_days: integer(1, 36500, 2190, 'SYMBIONT_AUDIT_RETENTION_DAYS'),
    audit_compression: flag(true),
    // docker is Tier 1 (container isolation), gvisor Tier 2 (user-space kernel).
    default_sandbox_tier: oneOf(['gvisor', 'docker'], 'gvisor', 'SYMBIONT_DEFAULT_SANDBOX_TIER'),
    sandbox_escape_detection: flag(true),
    resource_limit_enforcement: oneOf(['strict', 'permissive'], 'strict'),
    tls_min_version: oneOf(['1.3', '1.2'], '1.3'),
    certificate_pinning: flag(true),
    network_isolation: flag(true),
    policy_enforcement_mode: oneOf(['strict', 'permissive'], 'strict', 'SYMBIONT_POLICY_ENFORCEMENT'),
    policy_violation_action: oneOf(['deny_and_alert', 'deny'], 'deny_and_alert'),
    emergency_override_enabled: flag(false),
  },
  tofu: {
    enabled: flag(true, 'SYMBIONT_TOFU_ENABLED'),
    key_verification_required: flag(true),
    trust_on_first_use_timeout_hours: integer(1, 8760, 24),
    automatic_key_pinning: flag(false),
  },
  keys: {
    // The file key store (DESIGN §8): private keys wrapped under the KEK, one JSON file each.
    dir: path('.bulwark/keys', 'SYMBIONT_KEY_DIR'),
    // The KEK itself comes only from SYMBIONT_KEK (see secretEnvVars), never from this file.
    kek_file: path(undefined, 'SYMBIONT_KEK_FILE'),
    // The pin every peer checks directory entries against (`root.pub` written by `bulwark init`).
    root_public_key: {
      schema: z.string().refine(isPublicKeyText),
      fallback: undefined,
      expected: () => 'an Ed25519 public key: 64 hex digits or the base64 of 32 bytes',
      kind: 'plain',
      env: { name: 'SYMBIONT_ROOT_PUBLIC_KEY', parse: (raw: string) => raw },
    } satisfies Setting<string | undefined>,
  },
  policy: {
    // Request fields masked in policy.decision audit events (OPA decision-log `mask` style):
    // dotted paths from the request root; a path through a list masks every element.
    decision_log_mask: list(z.string().regex(DOTTED_PATH), 'dotted request paths such as "context.user.ssn"', 'SYMBIONT_POLICY_DECISION_LOG_MASK'),
    // Principals allowed to register, update and roll back policies (default: nobody).
    admins: list(z.string().regex(PRINCIPAL_ID), 'principal ids such as "analyst.alice"', 'SYMBIONT_POLICY_ADMINS'),
    // Strict mode: a decision is denied while the ledger has not committed this service's
    // decision events for longer than this (the audit trail is that far behind).
    max_ledger_lag_ms: integer(100, 3_600_000, 5000, 'SYMBIONT_POLICY_MAX_LEDGER_LAG_MS'),
  },
  // Size limits of the JetStream streams and of the directory bucket (DESIGN §3a). Every one
  // has a limit and refuses new messages when full (discard new): a full BULWARK_EVENTS makes
  // decisions deny, it never drops events the ledger has not committed. Defaults fit a small
  // deployment (about 5.3 GiB of JetStream storage); @bulwark/bus DEFAULT_STREAM_LIMITS holds the same numbers.
  bus: {
    events_max_bytes: integer(64 * KiB, TiB, 1 * GiB, 'SYMBIONT_BUS_EVENTS_MAX_BYTES'),
    events_max_messages: integer(16, 1e12, 1_000_000, 'SYMBIONT_BUS_EVENTS_MAX_MESSAGES'),
    events_max_message_size: integer(1 * KiB, 64 * MiB, 1 * MiB, 'SYMBIONT_BUS_EVENTS_MAX_MESSAGE_SIZE'),
    ledger_max_bytes: integer(64 * KiB, TiB, 4 * GiB, 'SYMBIONT_BUS_LEDGER_MAX_BYTES'),
    ledger_max_messages: integer(16, 1e12, 10_000_000, 'SYMBIONT_BUS_LEDGER_MAX_MESSAGES'),
    ledger_max_message_size: integer(1 * KiB, 64 * MiB, 1 * MiB, 'SYMBIONT_BUS_LEDGER_MAX_MESSAGE_SIZE'),
    incidents_max_bytes: integer(64 * KiB, TiB, 256 * MiB, 'SYMBIONT_BUS_INCIDENTS_MAX_BYTES'),
    incidents_max_messages: integer(16, 1e12, 100_000, 'SYMBIONT_BUS_INCIDENTS_MAX_MESSAGES'),
    incidents_max_message_size: integer(1 * KiB, 64 * MiB, 256 * KiB, 'SYMBIONT_BUS_INCIDENTS_MAX_MESSAGE_SIZE'),
    directory_max_bytes: integer(64 * KiB, TiB, 64 * MiB, 'SYMBIONT_BUS_DIRECTORY_MAX_BYTES'),
    directory_max_messages: integer(16, 1e12, 100_000, 'SYMBIONT_BUS_DIRECTORY_MAX_MESSAGES'),
    directory_max_value_size: integer(512, 64 * KiB, 1 * KiB, 'SYMBIONT_BUS_DIRECTORY_MAX_VALUE_SIZE'),
  },
  nats: {
    url: {
      schema: z.string().refine((text) => text.split(',').every((server) => hasProtocol(server.trim(), natsProtocols))),
      fallback: 'nats://127.0.0.1:4222',
      expected: () => 'nats://, tls://, ws:// or wss:// URLs separated by commas',
      kind: 'url',
      env: { name: 'NATS_URL', parse: (raw: string) => raw },
    } satisfies Setting<string>,
  },
  database: {
    // Unset means the embedded PGlite database in memory; `pglite:<dir>` keeps its files in <dir> (@bulwark/store).
    url: {
      schema: z.string().refine((text) => hasProtocol(text, postgresProtocols) || isPgliteUrl(text)),
      fallback: undefined,
      expected: () => 'a postgres:// or postgresql:// URL, pglite:memory or pglite:<dir>',
      kind: 'url',
      env: { name: 'DATABASE_URL', parse: (raw: string) => raw },
    } satisfies Setting<string | undefined>,
  },
  log: {
    level: oneOf(['info', 'fatal', 'error', 'warn', 'debug', 'trace', 'silent'], 'info', 'SYMBIONT_LOG_LEVEL'),
  },
} as const;

/**
 * Variables that hold secrets and are read by the code that uses them, never held in the
 * configuration (so `bulwark config` cannot print them): the key-encryption key, read by
 * @bulwark/keystore. Listed so that a misspelling of one is caught like any other.
 */
export const secretEnvVars: readonly string[] = ['SYMBIONT_KEK'];

type Settings = typeof settings;
export type SectionName = keyof Settings;
type ValueOf<S> = S extends { readonly fallback: infer T; readonly schema: z.ZodType<infer U> } ? T | U : never;

/** The validated configuration; every section and value is frozen. */
export type BulwarkConfig = {
  readonly [S in SectionName]: { readonly [K in keyof Settings[S]]: ValueOf<Settings[S][K]> };
};

/** A value's dotted name, as in TOML: `security.crypto_provider`. */
export type ConfigKey = { [S in SectionName]: `${S}.${keyof Settings[S] & string}` }[SectionName];

export type CryptoProvider = BulwarkConfig['security']['crypto_provider'];
export type EncryptionAlgorithm = BulwarkConfig['security']['encryption_algorithm'];
export type SandboxTier = BulwarkConfig['security']['default_sandbox_tier'];
export type EnforcementMode = BulwarkConfig['security']['policy_enforcement_mode'];
export type ViolationAction = BulwarkConfig['security']['policy_violation_action'];
export type TlsVersion = BulwarkConfig['security']['tls_min_version'];
export type LogLevel = BulwarkConfig['log']['level'];
export type BusLimitsConfig = BulwarkConfig['bus'];

export interface SettingEntry {
  readonly section: SectionName;
  readonly name: string;
  readonly key: ConfigKey;
  readonly setting: Setting<unknown>;
}

/** Every setting in table order, flattened. */
export const settingEntries: readonly SettingEntry[] = Object.entries(settings).flatMap(([section, table]) =>
  Object.entries(table).map(([name, setting]) => ({
    section: section as SectionName,
    name,
    key: `${section}.${name}` as ConfigKey,
    setting: setting as Setting<unknown>,
  })),
);
