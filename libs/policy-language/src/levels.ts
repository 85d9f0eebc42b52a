import { InputError } from '@bulwark/errors';

/** README "Classification levels": the default order, lowest first. */
export const DEFAULT_LEVELS: readonly string[] = Object.freeze(['public', 'internal', 'confidential', 'secret', 'top_secret']);

export function checkLevels(levels: readonly string[]): readonly string[] {
  if (levels.length === 0) throw new InputError('E_POLICY_LEVELS', 'classification levels: the list is empty; give at least one level, lowest first');
  const seen = new Set<string>();
  for (const level of levels) {
    if (typeof level !== 'string' || level.length === 0) {
      throw new InputError('E_POLICY_LEVELS', 'classification levels: every level must be a non-empty string', { levels });
    }
    if (seen.has(level)) throw new InputError('E_POLICY_LEVELS', `classification levels: '${level}' appears twice; each level has one rank`, { levels });
    seen.add(level);
  }
  return Object.freeze([...levels]);
}
