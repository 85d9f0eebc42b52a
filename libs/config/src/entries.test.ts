import { describe, expect, it } from 'vitest';
import { configEntries, loadConfig, redactUrl } from './index.js';

describe('configEntries', () => {
  it('lists every value with its source and hides URL credentials', () => {
    const loaded = loadConfig({
      env: { DATABASE_URL: 'postgres://app:s3cret@db:5432/bulwark?sslmode=require', NATS_URL: 'nats://tok3n@nats:4222', SYMBIONT_TOFU_ENABLED: 'false' },
      cwd: '/srv',
    });
    const entries = configEntries(loaded);
    expect(entries).toHaveLength(44);
    expect(entries.find((e) => e.key === 'database.url')).toEqual({
      key: 'database.url',
      value: 'postgres://app:***@db:5432/bulwark?sslmode=require',
      source: 'env:DATABASE_URL',
    });
    expect(entries.find((e) => e.key === 'nats.url')?.value).toBe('nats://***@nats:4222');
    expect(entries.find((e) => e.key === 'tofu.enabled')).toEqual({ key: 'tofu.enabled', value: false, source: 'env:SYMBIONT_TOFU_ENABLED' });
    expect(JSON.stringify(entries)).not.toMatch(/s3cret|tok3n/);
    // The loaded config itself keeps the real URL for the code that connects.
    expect(loaded.config.database.url).toBe('postgres://app:s3cret@db:5432/bulwark?sslmode=require');
  });
});

describe('redactUrl', () => {
  it('hides passwords, bare tokens and secret query parameters', () => {
    expect(redactUrl('postgresql://u:p@h/db')).toBe('postgresql://u:***@h/db');
    expect(redactUrl('nats://a:1@h1:4222,nats://b:2@h2:4222')).toBe('nats://a:***@h1:4222,nats://b:***@h2:4222');
    expect(redactUrl('postgres://h/db?user=u&password=p&sslkey=k&sslmode=verify-full')).toBe('postgres://h/db?user=u&password=***&sslkey=***&sslmode=verify-full');
    expect(redactUrl('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
  });
});
