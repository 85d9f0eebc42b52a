import type { ValueForm } from './settings.js';

const MAX_SHOWN = 80;
const SECRET_PARAM = /pass|secret|token|key/i;

/**
 * Hides the credentials a URL may carry: the password (or a bare token, as NATS allows
 * in `nats://token@host`) and query parameters such as libpq's `password=`. Works on text
 * that does not parse as a URL too, since invalid values are shown in error messages.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/\/\/([^/?#@\s]*)@/g, (_match, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return colon >= 0 ? `//${userinfo.slice(0, colon)}:***@` : '//***@';
    })
    .replace(/([?&])([^=&#]+)=([^&#]*)/g, (match, sep: string, name: string) => (SECRET_PARAM.test(name) ? `${sep}${name}=***` : match));
}

function truncate(text: string): string {
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/**
 * A value as it appears in a one-line message: environment text in single quotes, file
 * values in TOML-like form; long values are cut and control characters escaped so the
 * message stays on one line.
 */
export function showValue(value: unknown, form: ValueForm, secretBearing: boolean): string {
  if (form === 'env' && typeof value === 'string') {
    const text = truncate(secretBearing ? redactUrl(value) : value);
    // eslint-disable-next-line no-control-regex
    return /[\u0000-\u001f\u007f']/.test(text) ? JSON.stringify(text) : `'${text}'`;
  }
  if (typeof value === 'string') return JSON.stringify(truncate(secretBearing ? redactUrl(value) : value));
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === undefined) return '(unset)';
  return truncate(JSON.stringify(value) ?? String(value));
}
