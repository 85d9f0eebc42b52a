/**
 * How often a rotating service asks the key manager whether to rotate (`keys.get`): a tenth of
 * the rotation interval, at most 60 s (@bulwark/client `rotationCheckMs`), so that a rotation an
 * administrator requests (`bulwark keys rotate <principal>`) is picked up within a minute.
 * `SYMBIONT_KEY_ROTATION_CHECK_MS` sets it for tests (200 to 60 000 ms); anything else there is
 * a configuration error (exit 2, naming the setting).
 */
import { MAX_ROTATION_CHECK_MS, rotationCheckMs } from '@bulwark/client';
import { InputError } from '@bulwark/errors';

export const MIN_ROTATION_CHECK_MS = 200;

export function keyRotationCheckMs(intervalMs: number, env: NodeJS.ProcessEnv): number {
  const text = env['SYMBIONT_KEY_ROTATION_CHECK_MS'];
  if (text === undefined) return rotationCheckMs(intervalMs);
  const ms = /^[1-9]\d*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(ms) || ms < MIN_ROTATION_CHECK_MS || ms > MAX_ROTATION_CHECK_MS) {
    throw new InputError('E_CONFIG', `SYMBIONT_KEY_ROTATION_CHECK_MS=${JSON.stringify(text)}: must be an integer number of milliseconds from ${MIN_ROTATION_CHECK_MS} to ${MAX_ROTATION_CHECK_MS}`, { setting: 'SYMBIONT_KEY_ROTATION_CHECK_MS' });
  }
  return ms;
}
