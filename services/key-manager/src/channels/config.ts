import { isValidId } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';

/**
 * `SYMBIONT_KEY_CHANNELS`: the channels a deployment needs, created at start if missing:
 * `<channel>=<subscriber>,<subscriber>;<channel>=...`, e.g.
 * `ledger.full=svc.audit-ledger,svc.incident-response;soc.incidents=svc.incident-response,analyst.ann`.
 */
export function parseChannelsSetting(text: string | undefined, name = 'SYMBIONT_KEY_CHANNELS'): { channel: string; subscribers: string[] }[] {
  if (text === undefined || text.trim() === '') return [];
  const seen = new Set<string>();
  return text.split(';').map((part, i) => {
    const [channel, list, extra] = part.split('=').map((s) => s.trim());
    const where = `${name} entry ${i + 1} '${part.slice(0, 80)}'`;
    if (channel === undefined || list === undefined || extra !== undefined || !isValidId(channel)) throw new InputError('E_CONFIG', `${where} is not <channel>=<subscriber>,<subscriber>`, { name });
    if (seen.has(channel)) throw new InputError('E_CONFIG', `${where}: channel ${channel} is named twice`, { name });
    seen.add(channel);
    const subscribers = list.split(',').map((s) => s.trim());
    const bad = subscribers.find((s) => !isValidId(s));
    if (bad !== undefined || subscribers.length === 0) throw new InputError('E_CONFIG', `${where}: '${(bad ?? '').slice(0, 80)}' is not a principal id`, { name });
    return { channel, subscribers };
  });
}
