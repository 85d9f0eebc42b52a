import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'smol-toml';
import { KeyStoreInputError } from '../errors.js';

/** The PIN in the environment (else `pin_file` in the HSM configuration). */
export const HSM_PIN_ENV = 'SYMBIONT_HSM_PIN';
export const DEFAULT_ROOT_LABEL = 'bulwark-root';
export const DEFAULT_KEK_LABEL = 'bulwark-kek';

/**
 * The file `SYMBIONT_HSM_CONFIG_PATH` names (TOML):
 *
 *   module = "/usr/lib/softhsm/libsofthsm2.so"   # the PKCS#11 module
 *   token_label = "bulwark"
 *   pin_file = "hsm.pin"                          # mode 0600; or SYMBIONT_HSM_PIN
 *   root_label = "bulwark-root"                   # the root Ed25519 key pair in the token
 *   kek_label = "bulwark-kek"                     # the AES-256 key that wraps the store's files
 *
 * Relative paths are relative to the file. The PIN is never in this file.
 */
export interface HsmConfig {
  readonly path: string;
  readonly module: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly pinSource: string;
  readonly rootLabel: string;
  readonly kekLabel: string;
}

const KEYS = new Set(['module', 'token_label', 'pin_file', 'root_label', 'kek_label']);

export function loadHsmConfig(path: string, env: Readonly<Record<string, string | undefined>> = process.env): HsmConfig {
  const abs = resolve(path);
  const fail = (code: string, why: string): KeyStoreInputError => new KeyStoreInputError(code, `HSM configuration ${abs}: ${why}`, { path: abs });
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (cause) {
    throw new KeyStoreInputError('E_HSM_CONFIG', `HSM configuration ${abs}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { path: abs }, { cause });
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new KeyStoreInputError('E_HSM_CONFIG', `HSM configuration ${abs}: not TOML (${(cause as Error).message.split('\n')[0]})`, { path: abs }, { cause });
  }
  for (const key of Object.keys(doc)) if (!KEYS.has(key)) throw fail('E_HSM_CONFIG', `unknown key ${JSON.stringify(key)} (known: ${[...KEYS].join(', ')})`);
  const text_ = (key: string, fallback?: string): string => {
    const value = doc[key] ?? fallback;
    if (typeof value !== 'string' || value === '') throw fail('E_HSM_CONFIG', `${key} must be a non-empty string`);
    return value;
  };
  const near = (p: string): string => (isAbsolute(p) ? p : resolve(dirname(abs), p));
  const inline = env[HSM_PIN_ENV];
  const pinFile = doc['pin_file'] === undefined ? undefined : near(text_('pin_file'));
  if (inline !== undefined && inline !== '' && pinFile !== undefined) throw fail('E_HSM_PIN_AMBIGUOUS', `both ${HSM_PIN_ENV} and pin_file are set; set only one PIN source`);
  let pin: string;
  let pinSource: string;
  if (pinFile !== undefined) {
    pin = readPinFile(pinFile);
    pinSource = `pin_file ${pinFile}`;
  } else if (inline !== undefined && inline !== '') {
    pin = inline;
    pinSource = HSM_PIN_ENV;
  } else {
    throw fail('E_HSM_PIN_MISSING', `no PIN: set ${HSM_PIN_ENV} or pin_file (a mode-0600 file holding it)`);
  }
  return { path: abs, module: near(text_('module')), tokenLabel: text_('token_label'), pin, pinSource, rootLabel: text_('root_label', DEFAULT_ROOT_LABEL), kekLabel: text_('kek_label', DEFAULT_KEK_LABEL) };
}

function readPinFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (cause) {
    throw new KeyStoreInputError('E_HSM_PIN_FILE', `HSM PIN file ${path}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { path }, { cause });
  }
  if ((mode & 0o077) !== 0) throw new KeyStoreInputError('E_HSM_PIN_FILE', `HSM PIN file ${path}: permissions 0${mode.toString(8)} are too open; it must not be accessible by group or others (chmod 600 it)`, { path, mode });
  const pin = readFileSync(path, 'utf8').trim();
  if (pin === '') throw new KeyStoreInputError('E_HSM_PIN_FILE', `HSM PIN file ${path}: empty`, { path });
  return pin;
}
