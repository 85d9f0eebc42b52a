import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's softhsm2 package puts the module here. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  readonly dir: string;
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  /** An HSM configuration file for `SYMBIONT_HSM_CONFIG_PATH` naming this token (PIN from SYMBIONT_HSM_PIN). */
  readonly configPath: string;
  remove(): void;
}

export function softHsmAvailable(): boolean {
  return existsSync(SOFTHSM_MODULE);
}

/**
 * A fresh SoftHSM2 token in its own temporary directory, made with softhsm2-util. Points
 * SOFTHSM2_CONF at it: SoftHSM reads that and scans for tokens at C_Initialize, so make the
 * token before any PKCS#11 session of this process is open (the module is finalized when its
 * last session closes).
 */
export function createSoftHsmToken(options: { label?: string; pin?: string } = {}): SoftHsmToken {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-softhsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env['SOFTHSM2_CONF'] = conf;
  const label = options.label ?? 'bulwark';
  const pin = options.pin ?? '4321-test';
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `${pin}-so`], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'pipe' });
  const configPath = join(dir, 'hsm.toml');
  writeFileSync(configPath, `module = "${SOFTHSM_MODULE}"\ntoken_label = "${label}"\n`);
  return { dir, module: SOFTHSM_MODULE, label, pin, configPath, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
