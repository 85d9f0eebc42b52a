/**
 * `bulwark keys rekek --new-kek-file FILE`: KEK rotation (issue 12) where the key store is,
 * offline: every key file of the store is wrapped again under the KEK in FILE, each key
 * unwrapped only in this process (FileKeyStore.rewrapAll). Nothing is written unless every file
 * opens under the current KEK or the new one; an interrupted run is finished by running it
 * again. With a home it is the key manager's store and KEK (as `keys backup`). Afterwards the
 * old KEK opens nothing in the store: give FILE where the old one was given.
 * On an HSM store (`security.hsm_enabled`, or a home whose custody is the HSM) there is no KEK
 * file: `bulwark keys rekek` makes a new AES key in the token, rewraps every file under it and
 * destroys the old key (rotateHsmKek of @bulwark/keystore); run again, it finishes an
 * interrupted rotation, which the key manager refuses to start on.
 */
import { resolve } from 'node:path';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadKek, rotateHsmKek } from '@bulwark/keystore';
import { ExitCode, type RegisterCommand } from '../io.js';

export const registerKeysKekCommand: RegisterCommand = (program, io, setExitCode) => {
  const keys = program.commands.find((c) => c.name() === 'keys') ?? program.command('keys');
  keys
    .command('rekek')
    .description('rotate the key-encryption key: rewrap every key file of the store under the KEK in --new-kek-file, or on an HSM under a new key made in the token (offline, where the store is)')
    .option('--new-kek-file <file>', 'a file holding the new KEK (base64 of 32 bytes, mode 0600; e.g. from `openssl rand -base64 32`); not on an HSM, whose new key is made in the token')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON')
    .action(async (o: { newKekFile?: string; file?: string; json?: boolean }) => {
      const { config } = loadConfig({ env: io.env, cwd: io.cwd, ...(o.file === undefined ? {} : { configPath: o.file }) });
      const provider = createCryptoProvider(config.security.crypto_provider);
      const dir = resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR);
      if (config.security.hsm_enabled) {
        if (o.newKekFile !== undefined) throw new InputError('E_USAGE', `bulwark keys rekek --new-kek-file: the store is on an HSM (security.hsm_enabled): its new key-encryption key is made inside the token; run it without --new-kek-file`);
        const configPath = config.security.hsm_config_path;
        if (configPath === undefined) throw new InputError('E_USAGE', 'bulwark keys rekek: the HSM key store needs security.hsm_config_path (SYMBIONT_HSM_CONFIG_PATH)');
        const r = await rotateHsmKek({ configPath, dir, provider, env: io.env });
        if (o.json === true) io.stdout(`${JSON.stringify({ dir, keyStore: 'hsm', token: r.token, label: r.label, resumed: r.resumed, rewrapped: r.rewrapped, already: r.already, files: r.files })}\n`);
        else
          io.stdout(
            `${r.resumed ? 'finished the interrupted rotation: ' : ''}rewrapped ${r.rewrapped} key files in ${dir}${r.already > 0 ? ` (${r.already} already were)` : ''} under a new key-encryption key made in the token (AES-256, sensitive, never extractable), now ${r.token}/${r.label}; the old key is destroyed: ${r.files} key files open under the new one, and backups made before this (their files under the old key) open nowhere now: make a new backup\n`,
          );
        setExitCode(ExitCode.ok);
        return;
      }
      if (o.newKekFile === undefined) throw new InputError('E_USAGE', 'bulwark keys rekek: give the new KEK with --new-kek-file <file> (a mode-0600 file holding the base64 of 32 new bytes)');
      const current = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
      const newPath = resolve(io.cwd, o.newKekFile);
      if (current.source.endsWith(` ${newPath}`)) throw new InputError('E_USAGE', `--new-kek-file ${newPath} is the KEK in use (${current.source}); give a file holding a new KEK`);
      const next = loadKek({ provider, env: {}, kekFile: newPath, cwd: io.cwd });
      const store = await FileKeyStore.open({ dir, wrapper: current, provider });
      const { rewrapped, already } = await store.rewrapAll(next);
      if (o.json === true) io.stdout(`${JSON.stringify({ dir: store.dir, rewrapped, already, kekFile: newPath })}\n`);
      else io.stdout(`rewrapped ${rewrapped} key files in ${store.dir} under the KEK in ${newPath}${already > 0 ? ` (${already} already were)` : ''}; the old KEK (${current.source}) opens none of them now: from now on give ${newPath} where it was given (a home's key manager: SYMBIONT_KEY_MANAGER_KEK_FILE; otherwise SYMBIONT_KEK_FILE or [keys] kek_file)\n`);
      setExitCode(ExitCode.ok);
    });
};
