/**
 * What a holder's rotation check decides from its key view (`bulwark.keys.get`), and how often it
 * asks (issue 12, "Rotation"). Kept apart from the rotation itself (key-rotation.ts), which
 * only runs what this decides.
 *
 * - A rotation requested of the holder (`rotationRequested`, an administrator's or its own
 *   `keys.request-rotation`) is answered first, with trigger `on_demand`: the ledger's
 *   `keys.rotated` then shows the rotation answered the request. (A `compromise` request is not
 *   rotated with trigger `compromise`: that would raise the minimum verify version at the
 *   rotation itself, refusing the frames the holder still seals under its old version until it
 *   switched; the key manager raises it just after, services/key-manager README.)
 * - Else the interval: `rotationDue`, trigger `interval`.
 *
 * The check period is a tenth of the interval but at most `MAX_ROTATION_CHECK_MS` (60 s): a
 * requested rotation must be picked up within a minute, whatever the interval.
 */
import type { RotationTrigger } from './key-rotation.js';
import type { KeyView } from './keys.js';

export const MAX_ROTATION_CHECK_MS = 60_000;

/** The check period for a rotation interval: a tenth of it, at most 60 s. */
export function rotationCheckMs(intervalMs: number): number {
  return Math.min(intervalMs / 10, MAX_ROTATION_CHECK_MS);
}

/** The trigger to rotate with now, or undefined when no rotation is called for. */
export function rotationTrigger(view: Pick<KeyView, 'rotationDue' | 'rotationRequested'>): RotationTrigger | undefined {
  if (view.rotationRequested !== null && view.rotationRequested !== undefined) return 'on_demand';
  return view.rotationDue ? 'interval' : undefined;
}
