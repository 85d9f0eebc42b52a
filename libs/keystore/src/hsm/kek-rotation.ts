/**
 * Rotating the token's key-encryption key (issue 12, HSM custody; `bulwark keys rekek` on an HSM
 * store). The new AES-256 key is generated in the token (sensitive, never extractable) under a
 * label of its own (`<kek_label>.next`), every key file of the store is wrapped again under it
 * (FileKeyStore.rewrapAll: each new wrap opened before it replaces the file), every file is
 * checked to open under it, and only then the old key is destroyed and the new one takes its
 * label. A state file in the key directory (`hsm-kek-rotation.json`: the token, the old and new
 * labels, the phase) says where a run was; running it again finishes an interrupted one from any
 * point. While it is there (or the token holds a `<kek_label>.next` key) the store's opener and
 * provisioning refuse, naming the command that finishes it: a key manager started mid-rotation
 * would write files under a key that is about to be destroyed.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CryptoProvider } from '@bulwark/crypto';
import { writeFileAtomic } from '../atomic-file.js';
import { KeyStoreError } from '../errors.js';
import { FileKeyStore } from '../file-key-store.js';
import { loadHsmConfig } from './hsm-config.js';
import { HsmKek } from './hsm-kek.js';
import { Pkcs11Token } from './pkcs11-token.js';

/** The state file of an unfinished rotation, in the key directory. */
export const HSM_KEK_ROTATION_FILE = 'hsm-kek-rotation.json';
const FORMAT = 'bulwark-hsm-kek-rotation/v1';
const FINISH = 'finish it with `bulwark keys rekek` (the same HSM configuration and key directory) first';

/** The label the new KEK has until the old one is destroyed. */
export const nextKekLabel = (kekLabel: string): string => `${kekLabel}.next`;

interface RotationState {
  readonly format: typeof FORMAT;
  readonly token: string;
  readonly old_label: string;
  readonly new_label: string;
  /** `rewrapping`: the old key still wraps files; `finishing`: every file opens under the new one, the old is being destroyed. */
  readonly phase: 'rewrapping' | 'finishing';
  readonly started: string;
}

function readState(path: string): RotationState | undefined {
  if (!existsSync(path)) return undefined;
  let doc: Partial<RotationState>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Partial<RotationState>;
  } catch (cause) {
    throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${path} is corrupt (${cause instanceof Error ? cause.message : String(cause)}): the state of a key-encryption key rotation; nothing was done`, { path }, { cause });
  }
  if (doc.format !== FORMAT || typeof doc.token !== 'string' || typeof doc.old_label !== 'string' || typeof doc.new_label !== 'string' || (doc.phase !== 'rewrapping' && doc.phase !== 'finishing')) {
    throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${path}: not a ${FORMAT} state ({format, token, old_label, new_label, phase}); nothing was done`, { path });
  }
  return doc as RotationState;
}

const writeState = (path: string, state: RotationState, replace: boolean): Promise<boolean> => writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, 0o600, { replace });

/**
 * Refuses a store (`dir`, when given) or a token in the middle of a KEK rotation: the state file
 * in the directory, or the token's `<kek_label>.next` key. Called by the store's opener and by
 * provisioning (which, without it, would make a new KEK where the old one was just destroyed).
 */
export function refuseUnfinishedKekRotation(token: Pkcs11Token, kekLabel: string, dir?: string): void {
  const path = dir === undefined ? undefined : join(dir, HSM_KEK_ROTATION_FILE);
  const state = path === undefined ? undefined : readState(path);
  if (state !== undefined) {
    throw new KeyStoreError('E_HSM_ROTATION', `HSM: key directory ${dir}: a rotation of the token's key-encryption key is unfinished (${path}: old key ${JSON.stringify(state.old_label)}, new key ${JSON.stringify(state.new_label)}, phase ${state.phase}); ${FINISH}`, { dir });
  }
  const next = nextKekLabel(kekLabel);
  if (token.find('secret', next) !== undefined) {
    throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${token.location} holds ${JSON.stringify(next)}, the new key of an unfinished key-encryption key rotation; ${FINISH}`, { label: next });
  }
}

/** Every key file of `dir` opens under `kek` (its public key checked); the first that does not is named. */
async function checkAllOpen(dir: string, kek: HsmKek, provider: CryptoProvider): Promise<number> {
  const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
  const infos = await store.list();
  for (const info of infos) (await store.get(info)).secretKey.fill(0);
  return infos.length;
}

export type KekRotationStep = 'generated' | 'rewrapped' | 'destroyed' | 'relabelled';

export interface RotateHsmKekOptions {
  readonly configPath: string;
  readonly dir: string;
  readonly provider: CryptoProvider;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Called after each irreversible step (tests interrupt a run here, as a crash would). */
  readonly onStep?: (step: KekRotationStep) => void;
}

export interface HsmKekRotation {
  readonly token: string;
  readonly label: string;
  /** The run finished one a previous run started. */
  readonly resumed: boolean;
  readonly rewrapped: number;
  readonly already: number;
  /** Key files that open under the new key (all of them). */
  readonly files: number;
}

export async function rotateHsmKek(options: RotateHsmKekOptions): Promise<HsmKekRotation> {
  const { dir, provider } = options;
  const step = options.onStep ?? (() => undefined);
  const config = loadHsmConfig(options.configPath, options.env);
  const token = Pkcs11Token.open({ module: config.module, tokenLabel: config.tokenLabel, pin: config.pin });
  try {
    const statePath = join(dir, HSM_KEK_ROTATION_FILE);
    const nextLabel = nextKekLabel(config.kekLabel);
    let state = readState(statePath);
    const resumed = state !== undefined;
    if (state !== undefined && (state.token !== token.location || state.old_label !== config.kekLabel || state.new_label !== nextLabel)) {
      throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${statePath} is a rotation of ${state.token} ${JSON.stringify(state.old_label)}, not of ${token.location} ${JSON.stringify(config.kekLabel)}: use the HSM configuration it was started with; nothing was done`, { path: statePath });
    }
    const oldKey = token.find('secret', config.kekLabel);
    let nextKey = token.find('secret', nextLabel);
    if (state === undefined) {
      if (nextKey !== undefined) throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${token.location} already holds ${JSON.stringify(nextLabel)} but ${dir} has no ${HSM_KEK_ROTATION_FILE}: the rotation of another key directory on this token? Finish it there; nothing was done`, { label: nextLabel });
      // Every file opens under the current key before anything is made: a rotation never starts on a store it could not finish.
      await checkAllOpen(dir, HsmKek.open(token, config.kekLabel, provider), provider);
      state = { format: FORMAT, token: token.location, old_label: config.kekLabel, new_label: nextLabel, phase: 'rewrapping', started: new Date().toISOString() };
      await writeState(statePath, state, false);
    }
    let counts = { rewrapped: 0, already: 0 };
    if (nextKey === undefined) {
      if (state.phase === 'finishing') {
        // Interrupted after the relabelling: the key under the old label is the new one.
        const files = await checkAllOpen(dir, HsmKek.open(token, config.kekLabel, provider), provider);
        rmSync(statePath);
        return { token: token.location, label: config.kekLabel, resumed, ...counts, files };
      }
      if (oldKey === undefined) throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${token.location} holds neither ${JSON.stringify(config.kekLabel)} nor ${JSON.stringify(nextLabel)}: the key files of ${dir} open under no key of this token`, {});
      nextKey = token.generateAes256(nextLabel);
      step('generated');
    }
    const next = HsmKek.open(token, nextLabel, provider);
    if (oldKey !== undefined) {
      const old = HsmKek.open(token, config.kekLabel, provider);
      counts = await (await FileKeyStore.open({ dir, wrapper: old, provider })).rewrapAll(next);
      step('rewrapped');
      // Checked again before the old key goes: a file written meanwhile under it (a key manager that was running) stops here.
      await checkAllOpen(dir, next, provider);
      state = { ...state, phase: 'finishing' };
      await writeState(statePath, state, true);
      token.destroy(oldKey);
      step('destroyed');
    } else if (state.phase !== 'finishing') {
      throw new KeyStoreError('E_HSM_ROTATION', `HSM: ${token.location} has lost ${JSON.stringify(config.kekLabel)} before ${statePath} says every file was rewrapped: the files still under it cannot open`, {});
    }
    token.relabel(nextKey, config.kekLabel);
    step('relabelled');
    const files = await checkAllOpen(dir, HsmKek.open(token, config.kekLabel, provider), provider);
    rmSync(statePath);
    return { token: token.location, label: config.kekLabel, resumed, ...counts, files };
  } finally {
    token.close();
  }
}
