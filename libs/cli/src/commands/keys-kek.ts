/**
 * `bulwark keys rekek --new-kek-file FILE`: KEK rotation (issue 12) where the key store is,
 * offline: every key file of the store is wrapped again under the KEK in FILE, each key
 * unwrapped only in this process (FileKeyStore.rewrapAll). Nothing is written unless every file
 * opens under the current KEK or the new one; an interrupted run is finished by running it
 * again. With a home it is the key manager's store and KEK (as `keys backup`). Afterwards the
 * old KEK opens nothing in the store: give FILE where the old one was given.
 */
import { resolve } from 'node:path';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadKek } from '@bulwark/keystore';
import { ExitCode, type RegisterCommand } from '../io.js';

export const registerKeysKekCommand: RegisterCommand = (program, io, setExitCode) => {
  const keys = program.commands.find((c) => c.name() === 'keys') ?? program.command('keys');
  keys
    .command('rekek')
    .description('rotate the key-encryption key: rewrap every key file of the store under the KEK in --new-kek-file (offline, where the store is)')
    .requiredOption('--new-kek-file <file>', 'a file holding the new KEK (base64 of 32 bytes, mode 0600; e.g. from `openssl rand -base64 32`)')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON')
    .action(async (o: { newKekFile: string; file?: string; json?: boolean }) => {
      const { config } = loadConfig({ env: io.env, cwd: io.cwd, ...(o.file === undefined ? {} : { configPath: o.file }) });
      if (config.security.hsm_enabled) throw new InputError('E_USAGE', `bulwark keys rekek: the store is on an HSM (security.hsm_enabled): its files are wrapped by the token's own AES key, which is rotated inside the token, not with a KEK file`);
      const provider = createCryptoProvider(config.security.crypto_provider);
      const current = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
      const newPath = resolve(io.cwd, o.newKekFile);
      if (current.source.endsWith(` ${newPath}`)) throw new InputError('E_USAGE', `--new-kek-file ${newPath} is the KEK in use (${current.source}); give a file holding a new KEK`);
      const next = loadKek({ provider, env: {}, kekFile: newPath, cwd: io.cwd });
      const store = await FileKeyStore.open({ dir: resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: current, provider });
      const { rewrapped, already } = await store.rewrapAll(next);
      if (o.json === true) io.stdout(`${JSON.stringify({ dir: store.dir, rewrapped, already, kekFile: newPath })}\n`);
      else io.stdout(`rewrapped ${rewrapped} key files in ${store.dir} under the KEK in ${newPath}${already > 0 ? ` (${already} already were)` : ''}; the old KEK (${current.source}) opens none of them now: from now on give ${newPath} where it was given (a home's key manager: SYMBIONT_KEY_MANAGER_KEK_FILE; otherwise SYMBIONT_KEK_FILE or [keys] kek_file)\n`);
      setExitCode(ExitCode.ok);
    });
};
