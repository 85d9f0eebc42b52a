/**
 * The tool provider a home operates (services/schemapin `signing`): a P-256 key that signs the
 * tools administrators submit and approve, made on the first `bulwark up` and kept in the home
 * (owner-only), and the domain its signatures are for. The schemapin service answers that
 * domain's discovery from the key itself.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '@bulwark/schemapin';
import type { Home } from './home.js';

/** The domain of the tools a home signs, unless BULWARK_SCHEMAPIN_DOMAIN names another. */
export const DEFAULT_TOOLS_DOMAIN = 'tools.bulwark.local';

export function toolsProviderKeyFile(home: Home): string {
  return join(home.dir, 'schemapin', 'provider.pem');
}

/** The signing key's file, created (PKCS#8 PEM, mode 0600) when the home has none yet. */
export function ensureToolsProviderKey(home: Home): string {
  const file = toolsProviderKeyFile(home);
  if (!existsSync(file)) {
    mkdirSync(join(home.dir, 'schemapin'), { recursive: true, mode: 0o700 });
    writeFileSync(file, generateKeyPair().privateKeyPem, { mode: 0o600, flag: 'wx' });
  }
  return file;
}
