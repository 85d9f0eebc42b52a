import type { JsonValue } from '@bulwark/events';
import { fieldGetter, type EventView } from '../rules/condition.js';

/** Fills a rule's `output` (Falco style): `%evt.agent`, `%evt.details.rule`, `%count` (evidence events). */
export function renderOutput(template: string, event: EventView, count: number): string {
  return template.replace(/%(count|evt\.[A-Za-z0-9_.-]+)/g, (whole, name: string) => {
    if (name === 'count') return String(count);
    const get = fieldGetter(name.replace(/\.$/, ''));
    if (get === undefined) return whole;
    const v: JsonValue | undefined = get(event);
    return v === undefined ? '<NA>' : typeof v === 'string' ? v : JSON.stringify(v);
  });
}
