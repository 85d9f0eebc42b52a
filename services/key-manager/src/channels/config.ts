import { isValidId } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';

/** The kinds a channel may take every enrolled principal of (`analyst.*`, `agent.*`); services are named one by one. */
export const MEMBER_KINDS = ['analyst', 'agent'] as const;
export type MemberKind = (typeof MEMBER_KINDS)[number];

export interface ConfiguredChannel {
  readonly channel: string;
  /** Named subscribers (services, the principals `bulwark init` made). */
  readonly subscribers: readonly string[];
  /** `<kind>.*`: every principal of the kind with an active key in the key state, added when enrolled. */
  readonly kinds?: readonly MemberKind[];
}

/**
 * `SYMBIONT_KEY_CHANNELS`: the channels a deployment needs, created at start if missing:
 * `<channel>=<subscriber>,<subscriber>;<channel>=...`, e.g.
 * `ledger.full=svc.audit-ledger,svc.incident-response;soc.incidents=svc.incident-response,analyst.admin,analyst.*`.
 * A subscriber `analyst.*` (or `agent.*`) stands for every principal of that kind the key
 * manager has enrolled: they are subscribers at creation, and one enrolled later is added.
 */
export function parseChannelsSetting(text: string | undefined, name = 'SYMBIONT_KEY_CHANNELS'): ConfiguredChannel[] {
  if (text === undefined || text.trim() === '') return [];
  const seen = new Set<string>();
  return text.split(';').map((part, i) => {
    const [channel, list, extra] = part.split('=').map((s) => s.trim());
    const where = `${name} entry ${i + 1} '${part.slice(0, 80)}'`;
    if (channel === undefined || list === undefined || extra !== undefined || !isValidId(channel)) throw new InputError('E_CONFIG', `${where} is not <channel>=<subscriber>,<subscriber>`, { name });
    if (seen.has(channel)) throw new InputError('E_CONFIG', `${where}: channel ${channel} is named twice`, { name });
    seen.add(channel);
    const entries = list.split(',').map((s) => s.trim());
    const kinds = MEMBER_KINDS.filter((k) => entries.includes(`${k}.*`));
    const subscribers = entries.filter((s) => !kinds.some((k) => s === `${k}.*`));
    const bad = subscribers.find((s) => !isValidId(s));
    if (bad !== undefined) throw new InputError('E_CONFIG', `${where}: '${bad.slice(0, 80)}' is not a principal id (or ${MEMBER_KINDS.map((k) => `${k}.*`).join(', ')})`, { name });
    return { channel, subscribers, kinds };
  });
}
