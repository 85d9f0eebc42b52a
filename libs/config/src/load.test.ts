import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '@bulwark/errors';
import { busLimits, ConfigError, loadConfig } from './index.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeToml(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('gives the strict defaults with no file and no environment', () => {
    const { config, sources, file } = loadConfig({ env: {}, cwd: dir });
    expect(file).toBeUndefined();
    expect(config.security).toEqual({
      crypto_provider: 'auto',
      signature_algorithm: 'ed25519',
      encryption_algorithm: 'chacha20_poly1305',
      key_rotation_interval_days: 90,
      hsm_enabled: false,
      hsm_config_path: undefined,
      audit_enabled: true,
      audit_storage_path: join(dir, '.bulwark/audit'),
      audit_retention_days: 2190,
      audit_compression: true,
      default_sandbox_tier: 'gvisor',
      sandbox_escape_detection: true,
      resource_limit_enforcement: 'strict',
      tls_min_version: '1.3',
      certificate_pinning: true,
      network_isolation: true,
      policy_enforcement_mode: 'strict',
      policy_violation_action: 'deny_and_alert',
      emergency_override_enabled: false,
    });
    expect(config.tofu).toEqual({
      enabled: true,
      key_verification_required: true,
      trust_on_first_use_timeout_hours: 24,
      automatic_key_pinning: false,
    });
    expect(config.keys).toEqual({ dir: join(dir, '.bulwark/keys'), kek_file: undefined, root_public_key: undefined });
    expect(config.nats.url).toBe('nats://127.0.0.1:4222');
    expect(config.database.url).toBeUndefined();
    expect(config.log.level).toBe('info');
    expect(Object.values(sources).every((source) => source === 'default')).toBe(true);
    expect(Object.keys(sources)).toHaveLength(44);
  });

  it('returns a frozen configuration', () => {
    const loaded = loadConfig({ env: {}, cwd: dir });
    expect(Object.isFrozen(loaded)).toBe(true);
    expect(Object.isFrozen(loaded.config)).toBe(true);
    expect(Object.isFrozen(loaded.config.security)).toBe(true);
    expect(Object.isFrozen(loaded.sources)).toBe(true);
    expect(() => {
      (loaded.config.security as { emergency_override_enabled: boolean }).emergency_override_enabled = true;
    }).toThrow(TypeError);
  });

  it('treats an empty variable as unset', () => {
    const { config, sources } = loadConfig({ env: { SYMBIONT_AUDIT_ENABLED: '', DATABASE_URL: '' }, cwd: dir });
    expect(config.security.audit_enabled).toBe(true);
    expect(sources['security.audit_enabled']).toBe('default');
    expect(config.database.url).toBeUndefined();
  });
});

describe('loadConfig precedence and sources', () => {
  it('reads ./bulwark.toml from the working directory when present', () => {
    const path = writeToml('bulwark.toml', '[security]\ncrypto_provider = "noble"\n');
    const { config, sources, file } = loadConfig({ env: {}, cwd: dir });
    expect(file).toBe(path);
    expect(config.security.crypto_provider).toBe('noble');
    expect(sources['security.crypto_provider']).toBe(`file:${path}`);
    expect(sources['security.signature_algorithm']).toBe('default');
  });

  it('lets the environment override the file, and the file override the defaults', () => {
    const path = writeToml(
      'bulwark.toml',
      [
        '[security]',
        'crypto_provider = "noble"',
        'audit_retention_days = 2555',
        'default_sandbox_tier = "docker"',
        '[tofu]',
        'trust_on_first_use_timeout_hours = 48',
        '[log]',
        'level = "debug"',
      ].join('\n'),
    );
    const { config, sources } = loadConfig({
      env: { SYMBIONT_CRYPTO_PROVIDER: 'node', SYMBIONT_AUDIT_RETENTION_DAYS: '3650', NATS_URL: 'nats://a:4222,tls://b:4223', SYMBIONT_KEY_STORE_TYPE: 'hsm', SYMBIONT_HSM_CONFIG_PATH: '/etc/hsm.conf' },
      cwd: dir,
    });
    expect(config.security.crypto_provider).toBe('node');
    expect(sources['security.crypto_provider']).toBe('env:SYMBIONT_CRYPTO_PROVIDER');
    expect(config.security.audit_retention_days).toBe(3650);
    expect(sources['security.audit_retention_days']).toBe('env:SYMBIONT_AUDIT_RETENTION_DAYS');
    expect(config.security.default_sandbox_tier).toBe('docker');
    expect(sources['security.default_sandbox_tier']).toBe(`file:${path}`);
    expect(config.tofu.trust_on_first_use_timeout_hours).toBe(48);
    expect(config.log.level).toBe('debug');
    expect(config.nats.url).toBe('nats://a:4222,tls://b:4223');
    expect(sources['nats.url']).toBe('env:NATS_URL');
    expect(config.security.hsm_enabled).toBe(true);
    expect(sources['security.hsm_enabled']).toBe('env:SYMBIONT_KEY_STORE_TYPE');
    expect(config.security.policy_enforcement_mode).toBe('strict');
    expect(sources['security.policy_enforcement_mode']).toBe('default');
  });

  it('reads the file named by SYMBIONT_CONFIG, and the caller-named file before it', () => {
    const fromEnv = writeToml('env.toml', '[log]\nlevel = "warn"\n');
    const fromCaller = writeToml('caller.toml', '[log]\nlevel = "error"\n');
    writeToml('bulwark.toml', '[log]\nlevel = "trace"\n');
    expect(loadConfig({ env: { SYMBIONT_CONFIG: 'env.toml' }, cwd: dir }).file).toBe(fromEnv);
    expect(loadConfig({ env: { SYMBIONT_CONFIG: 'env.toml' }, cwd: dir }).config.log.level).toBe('warn');
    const loaded = loadConfig({ env: { SYMBIONT_CONFIG: 'env.toml' }, configPath: fromCaller, cwd: dir });
    expect(loaded.config.log.level).toBe('error');
    expect(loaded.sources['log.level']).toBe(`file:${fromCaller}`);
  });

  it('fails when a named config file does not exist', () => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_CONFIG: 'missing.toml' }, cwd: dir }));
    expect(err.message).toBe(`config file ${join(dir, 'missing.toml')} does not exist`);
    expect(() => loadConfig({ env: {}, configPath: join(dir, 'nope.toml'), cwd: dir })).toThrow(ConfigError);
  });

  it('resolves relative paths against the file that set them, or the working directory', () => {
    mkdirSync(join(dir, 'etc'));
    writeToml('etc/bulwark.toml', '[security]\nhsm_enabled = true\nhsm_config_path = "hsm.conf"\naudit_storage_path = "/var/audit/bulwark"\n');
    const fromFile = loadConfig({ env: {}, configPath: 'etc/bulwark.toml', cwd: dir });
    expect(fromFile.config.security.hsm_config_path).toBe(join(dir, 'etc', 'hsm.conf'));
    expect(fromFile.config.security.audit_storage_path).toBe('/var/audit/bulwark');
    const fromEnv = loadConfig({ env: { SYMBIONT_AUDIT_STORAGE: 'audit' }, cwd: dir });
    expect(fromEnv.config.security.audit_storage_path).toBe(join(dir, 'audit'));
  });
});

describe('loadConfig rejects bad environment values', () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ SYMBIONT_CRYPTO_PROVIDER: 'rsa' }, "SYMBIONT_CRYPTO_PROVIDER='rsa' is not allowed; expected one of: auto, sodium, node, noble"],
    [{ SYMBIONT_CRYPTO_PROVIDER: 'ring' }, "SYMBIONT_CRYPTO_PROVIDER='ring' is not allowed; expected one of: auto, sodium, node, noble"],
    [{ SYMBIONT_KEY_STORE_TYPE: 'pkcs11' }, "SYMBIONT_KEY_STORE_TYPE='pkcs11' is not allowed; expected one of: file, hsm"],
    [{ SYMBIONT_AUDIT_ENABLED: 'yes' }, "SYMBIONT_AUDIT_ENABLED='yes' is not allowed; expected one of: true, false"],
    [{ SYMBIONT_AUDIT_RETENTION_DAYS: 'seven years' }, "SYMBIONT_AUDIT_RETENTION_DAYS='seven years' is not allowed; expected an integer from 1 to 36500"],
    [{ SYMBIONT_AUDIT_RETENTION_DAYS: '0' }, "SYMBIONT_AUDIT_RETENTION_DAYS='0' is not allowed; expected an integer from 1 to 36500"],
    [{ SYMBIONT_AUDIT_RETENTION_DAYS: '-5' }, "SYMBIONT_AUDIT_RETENTION_DAYS='-5' is not allowed; expected an integer from 1 to 36500"],
    [{ SYMBIONT_AUDIT_RETENTION_DAYS: '99999999999999999999' }, "SYMBIONT_AUDIT_RETENTION_DAYS='99999999999999999999' is not allowed; expected an integer from 1 to 36500"],
    [{ SYMBIONT_POLICY_ENFORCEMENT: 'off' }, "SYMBIONT_POLICY_ENFORCEMENT='off' is not allowed; expected one of: strict, permissive"],
    [{ SYMBIONT_DEFAULT_SANDBOX_TIER: 'gVisor' }, "SYMBIONT_DEFAULT_SANDBOX_TIER='gVisor' is not allowed; expected one of: gvisor, docker"],
    [{ SYMBIONT_TOFU_ENABLED: 'TRUE' }, "SYMBIONT_TOFU_ENABLED='TRUE' is not allowed; expected one of: true, false"],
    [{ SYMBIONT_LOG_LEVEL: 'verbose' }, "SYMBIONT_LOG_LEVEL='verbose' is not allowed; expected one of: info, fatal, error, warn, debug, trace, silent"],
    [{ NATS_URL: 'http://127.0.0.1:4222' }, "NATS_URL='http://127.0.0.1:4222' is not allowed; expected nats://, tls://, ws:// or wss:// URLs separated by commas"],
    [{ DATABASE_URL: 'mysql://root@db/x' }, "DATABASE_URL='mysql://***@db/x' is not allowed; expected a postgres:// or postgresql:// URL, pglite:memory or pglite:<dir>"],
  ];
  it.each(cases)('rejects %o', (env, message) => {
    const err = configError(() => loadConfig({ env, cwd: dir }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.code).toBe('E_CONFIG');
    expect(err.message).toBe(message);
  });

  it('never shows a password from a bad URL', () => {
    const err = configError(() => loadConfig({ env: { DATABASE_URL: 'mysql://app:hunter2@db/x?password=hunter3' }, cwd: dir }));
    expect(err.message).not.toMatch(/hunter/);
    expect(err.message).toContain("'mysql://app:***@db/x?password=***'");
  });

  it('keeps the message on one line when the value has a newline', () => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_LOG_LEVEL: 'info\nwarn' }, cwd: dir }));
    expect(err.message).toBe('SYMBIONT_LOG_LEVEL="info\\nwarn" is not allowed; expected one of: info, fatal, error, warn, debug, trace, silent');
  });

  it('rejects a variable misspelt from a known one, and leaves other SYMBIONT_* variables alone', () => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_AUDIT_RETENTION_DAY: '3650', SYMBIONT_AGENT_NAME: 'x' }, cwd: dir }));
    expect(err.message).toBe('SYMBIONT_AUDIT_RETENTION_DAY is not a known variable; did you mean SYMBIONT_AUDIT_RETENTION_DAYS?');
    expect(err.problems).toHaveLength(1);
    expect(loadConfig({ env: { SYMBIONT_AGENT_NAME: 'x', SYMBIONT_KEY_STORE_PATH: '/k' }, cwd: dir }).config.security.hsm_enabled).toBe(false);
  });

  it('requires an HSM config path when the HSM key store is chosen', () => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_KEY_STORE_TYPE: 'hsm' }, cwd: dir }));
    expect(err.message).toBe(
      'security.hsm_enabled = true (env:SYMBIONT_KEY_STORE_TYPE) requires security.hsm_config_path; set SYMBIONT_HSM_CONFIG_PATH or hsm_config_path in [security]',
    );
  });

  it('names the first problem and counts the others', () => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_CRYPTO_PROVIDER: 'rsa', SYMBIONT_TOFU_ENABLED: 'no', SYMBIONT_LOG_LEVEL: 'loud' }, cwd: dir }));
    expect(err.message).toBe("SYMBIONT_CRYPTO_PROVIDER='rsa' is not allowed; expected one of: auto, sodium, node, noble (+2 more)");
    expect(err.problems).toHaveLength(3);
    expect(err.context.problems).toEqual(err.problems);
  });
});

describe('loadConfig rejects bad file values', () => {
  function fileError(text: string): { err: ConfigError; path: string } {
    const path = writeToml('bulwark.toml', text);
    return { err: configError(() => loadConfig({ env: {}, cwd: dir })), path };
  }

  it('names the file, line and key of a value of the wrong type', () => {
    const { err, path } = fileError('[security]\n# audit\naudit_enabled = "yes"\n');
    expect(err.message).toBe(`${path}:3: security.audit_enabled = "yes" is not allowed; expected one of: true, false`);
  });

  it('rejects an enum value outside the seed list and a number out of range', () => {
    const { err, path } = fileError('[security]\nsignature_algorithm = "rsa-pss"\nkey_rotation_interval_days = 0\n[tofu]\ntrust_on_first_use_timeout_hours = 1.5\n');
    expect(err.problems).toEqual([
      `${path}:2: security.signature_algorithm = "rsa-pss" is not allowed; expected one of: "ed25519"`,
      `${path}:3: security.key_rotation_interval_days = 0 is not allowed; expected an integer from 1 to 3650`,
      `${path}:5: tofu.trust_on_first_use_timeout_hours = 1.5 is not allowed; expected an integer from 1 to 8760`,
    ]);
    expect(err.message).toMatch(/ \(\+2 more\)$/);
  });

  it('quotes string choices so a bare number is visibly wrong', () => {
    const { err, path } = fileError('[security]\ntls_min_version = 1.3\n');
    expect(err.message).toBe(`${path}:2: security.tls_min_version = 1.3 is not allowed; expected one of: "1.3", "1.2"`);
  });

  it('rejects an unknown key with a suggestion, or the list of keys', () => {
    const { err, path } = fileError('[tofu]\nenabeld = true\nfoo = 1\n');
    expect(err.problems).toEqual([
      `${path}:2: unknown key tofu.enabeld; did you mean tofu.enabled?`,
      `${path}:3: unknown key tofu.foo; expected one of: enabled, key_verification_required, trust_on_first_use_timeout_hours, automatic_key_pinning`,
    ]);
  });

  it('rejects an unknown table and a top-level key', () => {
    const { err, path } = fileError('version = 2\n[securty]\ncrypto_provider = "node"\n[metrics]\n');
    expect(err.problems).toEqual([
      `${path}:1: unknown key version; expected one of: security, tofu, keys, policy, bus, nats, database, log`,
      `${path}:2: unknown table [securty]; did you mean [security]?`,
      `${path}:4: unknown table [metrics]; expected one of: security, tofu, keys, policy, bus, nats, database, log`,
    ]);
  });

  it('rejects a section that is not a table', () => {
    const { err, path } = fileError('security = "strict"\n');
    expect(err.message).toBe(`${path}:1: security = "strict" is not allowed; expected a table [security]`);
  });

  it('reports a TOML syntax error with its line and column', () => {
    const { err, path } = fileError('[security]\ncrypto_provider = "node"\naudit_enabled = = true\n');
    expect(err.message).toBe(`${path}:3:17: invalid TOML: invalid value`);
  });

  it('finds keys written with quotes or dots', () => {
    const { err, path } = fileError('[log]\n"level" = "loud"\n');
    expect(err.message).toBe(`${path}:2: log.level = "loud" is not allowed; expected one of: "info", "fatal", "error", "warn", "debug", "trace", "silent"`);
    const dotted = fileError('tofu.enabled = "no"\n');
    expect(dotted.err.message).toBe(`${dotted.path}:1: tofu.enabled = "no" is not allowed; expected one of: true, false`);
  });

  it('reports file problems before environment problems', () => {
    const path = writeToml('bulwark.toml', '[nats]\nurl = "http://x"\n');
    const err = configError(() => loadConfig({ env: { SYMBIONT_TOFU_ENABLED: 'maybe' }, cwd: dir }));
    expect(err.problems).toEqual([
      `${path}:2: nats.url = "http://x" is not allowed; expected nats://, tls://, ws:// or wss:// URLs separated by commas`,
      "SYMBIONT_TOFU_ENABLED='maybe' is not allowed; expected one of: true, false",
    ]);
  });
});

describe('loadConfig [keys]', () => {
  const hex = 'ab'.repeat(32);
  const base64 = Buffer.alloc(32, 0xab).toString('base64');

  it('reads the key directory, the KEK file and the pinned root key from the file, paths relative to it', () => {
    mkdirSync(join(dir, 'etc'));
    const path = writeToml('etc/bulwark.toml', `[keys]\ndir = "keys"\nkek_file = "/run/secrets/kek"\nroot_public_key = "${base64}"\n`);
    const { config, sources } = loadConfig({ env: {}, cwd: dir, configPath: path });
    expect(config.keys).toEqual({ dir: join(dir, 'etc', 'keys'), kek_file: '/run/secrets/kek', root_public_key: base64 });
    expect(sources['keys.root_public_key']).toBe(`file:${path}`);
  });

  it('takes them from SYMBIONT_KEY_DIR, SYMBIONT_KEK_FILE and SYMBIONT_ROOT_PUBLIC_KEY', () => {
    const { config, sources } = loadConfig({
      env: { SYMBIONT_KEY_DIR: 'k', SYMBIONT_KEK_FILE: 'kek.b64', SYMBIONT_ROOT_PUBLIC_KEY: hex },
      cwd: dir,
    });
    expect(config.keys).toEqual({ dir: join(dir, 'k'), kek_file: join(dir, 'kek.b64'), root_public_key: hex });
    expect(sources['keys.dir']).toBe('env:SYMBIONT_KEY_DIR');
  });

  it.each(['ab'.repeat(31), Buffer.alloc(31).toString('base64'), `${base64.slice(0, 42)}B=`, 'not a key'])('rejects the root key %j', (bad) => {
    const err = configError(() => loadConfig({ env: { SYMBIONT_ROOT_PUBLIC_KEY: bad }, cwd: dir }));
    expect(err.message).toContain('SYMBIONT_ROOT_PUBLIC_KEY=');
    expect(err.message).toContain('expected an Ed25519 public key: 64 hex digits or the base64 of 32 bytes');
  });

  it('never holds the KEK itself, and catches a misspelt SYMBIONT_KEK', () => {
    const loaded = loadConfig({ env: { SYMBIONT_KEK: base64 }, cwd: dir });
    expect(JSON.stringify(loaded)).not.toContain(base64);
    expect(configError(() => loadConfig({ env: { SYMBIONT_KEC: base64 }, cwd: dir })).message).toBe('SYMBIONT_KEC is not a known variable; did you mean SYMBIONT_KEK?');
  });

  it('rejects a KEK written into the file', () => {
    const path = writeToml('bulwark.toml', `[keys]\nkek = "${base64}"\n`);
    const err = configError(() => loadConfig({ env: {}, cwd: dir, configPath: path }));
    expect(err.message).toMatch(/unknown key keys.kek; expected one of: dir, kek_file, root_public_key$/);
    expect(err.message).not.toContain(base64);
  });
});

describe('loadConfig [policy]', () => {
  it('has no masked fields and no administrators by default', () => {
    expect(loadConfig({ env: {}, cwd: dir }).config.policy).toEqual({ decision_log_mask: [], admins: [], max_ledger_lag_ms: 5000 });
  });

  it('reads the decision-log mask and the administrators from the file and from comma-separated variables', () => {
    const path = writeToml('bulwark.toml', `[policy]\ndecision_log_mask = ["context.user.ssn", "context.card_number"]\nadmins = ["analyst.alice"]\n`);
    expect(loadConfig({ env: {}, cwd: dir, configPath: path }).config.policy).toEqual({
      decision_log_mask: ['context.user.ssn', 'context.card_number'],
      admins: ['analyst.alice'],
      max_ledger_lag_ms: 5000,
    });
    const { config, sources } = loadConfig({ env: { SYMBIONT_POLICY_DECISION_LOG_MASK: 'context.user.ssn, context.user.dob,', SYMBIONT_POLICY_ADMINS: 'analyst.a,svc.ops' }, cwd: dir });
    expect(config.policy).toEqual({ decision_log_mask: ['context.user.ssn', 'context.user.dob'], admins: ['analyst.a', 'svc.ops'], max_ledger_lag_ms: 5000 });
    expect(sources['policy.decision_log_mask']).toBe('env:SYMBIONT_POLICY_DECISION_LOG_MASK');
  });

  it('rejects a path that is not dotted member names, and an administrator that is not a principal id', () => {
    expect(configError(() => loadConfig({ env: { SYMBIONT_POLICY_DECISION_LOG_MASK: 'context..ssn' }, cwd: dir })).message).toContain(
      'expected dotted request paths such as "context.user.ssn", separated by commas',
    );
    const path = writeToml('bulwark.toml', `[policy]\nadmins = ["alice"]\n`);
    expect(configError(() => loadConfig({ env: {}, cwd: dir, configPath: path })).message).toContain('expected a list of principal ids such as "analyst.alice"');
  });
});

describe('loadConfig [policy] max_ledger_lag_ms and [bus]', () => {
  it('reads the ledger lag from the file and the environment, and refuses one out of range', () => {
    const path = writeToml('bulwark.toml', `[policy]\nmax_ledger_lag_ms = 2500\n`);
    expect(loadConfig({ env: {}, cwd: dir, configPath: path }).config.policy.max_ledger_lag_ms).toBe(2500);
    const { config, sources } = loadConfig({ env: { SYMBIONT_POLICY_MAX_LEDGER_LAG_MS: '750' }, cwd: dir });
    expect(config.policy.max_ledger_lag_ms).toBe(750);
    expect(sources['policy.max_ledger_lag_ms']).toBe('env:SYMBIONT_POLICY_MAX_LEDGER_LAG_MS');
    expect(configError(() => loadConfig({ env: { SYMBIONT_POLICY_MAX_LEDGER_LAG_MS: '0' }, cwd: dir })).message).toBe(
      "SYMBIONT_POLICY_MAX_LEDGER_LAG_MS='0' is not allowed; expected an integer from 100 to 3600000",
    );
  });

  it('gives every stream and the directory bucket a limit by default, as the bus defaults them', () => {
    const limits = busLimits(loadConfig({ env: {}, cwd: dir }).config);
    expect(limits.streams.events).toEqual({ maxBytes: 1024 ** 3, maxMessages: 1_000_000, maxMessageSize: 1024 ** 2 });
    expect(limits.streams.ledger).toEqual({ maxBytes: 4 * 1024 ** 3, maxMessages: 10_000_000, maxMessageSize: 1024 ** 2 });
    expect(limits.streams.incidents).toEqual({ maxBytes: 256 * 1024 ** 2, maxMessages: 100_000, maxMessageSize: 256 * 1024 });
    expect(limits.directory).toEqual({ maxBytes: 64 * 1024 ** 2, maxMessages: 100_000, maxValueSize: 1024 });
  });

  it('reads stream limits from [bus] and SYMBIONT_BUS_* variables', () => {
    const path = writeToml('bulwark.toml', `[bus]\nevents_max_bytes = 10485760\nevents_max_messages = 5000\n`);
    const { config, sources } = loadConfig({ env: { SYMBIONT_BUS_EVENTS_MAX_MESSAGE_SIZE: '65536' }, cwd: dir, configPath: path });
    expect(busLimits(config).streams.events).toEqual({ maxBytes: 10_485_760, maxMessages: 5000, maxMessageSize: 65_536 });
    expect(sources['bus.events_max_bytes']).toBe(`file:${path}`);
    expect(sources['bus.events_max_message_size']).toBe('env:SYMBIONT_BUS_EVENTS_MAX_MESSAGE_SIZE');
  });

  it('refuses a limit that is no limit, and a message size above the byte limit', () => {
    expect(configError(() => loadConfig({ env: { SYMBIONT_BUS_EVENTS_MAX_BYTES: '0' }, cwd: dir })).message).toBe(
      "SYMBIONT_BUS_EVENTS_MAX_BYTES='0' is not allowed; expected an integer from 65536 to 1099511627776",
    );
    expect(configError(() => loadConfig({ env: { SYMBIONT_BUS_EVENTS_MAX_BYTES: '-1' }, cwd: dir })).message).toContain('SYMBIONT_BUS_EVENTS_MAX_BYTES');
    const err = configError(() => loadConfig({ env: { SYMBIONT_BUS_INCIDENTS_MAX_BYTES: '65536', SYMBIONT_BUS_INCIDENTS_MAX_MESSAGE_SIZE: '131072' }, cwd: dir }));
    expect(err.message).toBe(
      'bus.incidents_max_message_size = 131072 (env:SYMBIONT_BUS_INCIDENTS_MAX_MESSAGE_SIZE) is larger than bus.incidents_max_bytes = 65536 (env:SYMBIONT_BUS_INCIDENTS_MAX_BYTES)',
    );
  });
});
