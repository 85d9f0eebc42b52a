import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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

/**
 * An attacker who has the module and the PIN, in a process of its own, going after the private
 * key labelled `label` (the root): `read-value` reads its CKA_VALUE, `wrap-out` wraps it under an
 * AES key the attacker makes for it. Returns `GOT <hex>` when the key came out, else
 * `REFUSED <the module's error>`.
 */
export function attackTokenKey(token: Pick<SoftHsmToken, 'module' | 'label' | 'pin'>, label: string, attack: 'read-value' | 'wrap-out', env: NodeJS.ProcessEnv = process.env): string {
  const pkcs11Path = createRequire(import.meta.url).resolve('pkcs11js');
  const script = `
    const p = require(${JSON.stringify(pkcs11Path)});
    const m = new p.PKCS11(); m.load(${JSON.stringify(token.module)}); m.C_Initialize();
    const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === ${JSON.stringify(token.label)});
    const s = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    m.C_Login(s, p.CKU_USER, ${JSON.stringify(token.pin)});
    m.C_FindObjectsInit(s, [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, { type: p.CKA_LABEL, value: ${JSON.stringify(label)} }]);
    const [key] = m.C_FindObjects(s, 1); m.C_FindObjectsFinal(s);
    if (key === undefined) { console.log('NO KEY'); process.exit(0); }
    try {
      if (${JSON.stringify(attack)} === 'read-value') {
        const v = m.C_GetAttributeValue(s, key, [{ type: p.CKA_VALUE }]);
        console.log('GOT ' + v[0].value.toString('hex'));
      } else {
        const w = m.C_GenerateKey(s, { mechanism: p.CKM_AES_KEY_GEN }, [{ type: p.CKA_TOKEN, value: false }, { type: p.CKA_VALUE_LEN, value: 32 }, { type: p.CKA_WRAP, value: true }]);
        const out = m.C_WrapKey(s, { mechanism: p.CKM_AES_KEY_WRAP_PAD }, w, key, Buffer.alloc(256));
        console.log('GOT ' + out.toString('hex'));
      }
    } catch (e) { console.log('REFUSED ' + e.message); }
    m.C_Finalize();`;
  return execFileSync(process.execPath, ['-e', script], { env: { ...env }, encoding: 'utf8' }).trim();
}
