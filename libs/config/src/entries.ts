import { redactUrl } from './display.js';
import type { ConfigSource, LoadedConfig } from './load.js';
import { settingEntries, type ConfigKey } from './settings.js';

/** One value as a person or a machine may see it: credentials in URLs are redacted. */
export interface ConfigEntry {
  readonly key: ConfigKey;
  readonly value: string | number | boolean | readonly string[] | undefined;
  readonly source: ConfigSource;
}

/** The effective configuration as a list, in table order, safe to print or log. */
export function configEntries(loaded: LoadedConfig): readonly ConfigEntry[] {
  return settingEntries.map(({ section, name, key, setting }) => {
    const value = (loaded.config[section] as Readonly<Record<string, ConfigEntry['value']>>)[name];
    return {
      key,
      value: setting.kind === 'url' && typeof value === 'string' ? redactUrl(value) : value,
      source: loaded.sources[key],
    };
  });
}
