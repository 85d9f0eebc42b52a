export { loadConfig, type LoadConfigOptions, type LoadedConfig, type ConfigSource } from './load.js';
export { configEntries, type ConfigEntry } from './entries.js';
export { ConfigError } from './errors.js';
export { redactUrl } from './display.js';
export { busLimits, type BusLimits, type StreamLimitValues } from './bus-limits.js';
export {
  type BulwarkConfig,
  type ConfigKey,
  type CryptoProvider,
  type EncryptionAlgorithm,
  type SandboxTier,
  type EnforcementMode,
  type ViolationAction,
  type TlsVersion,
  type LogLevel,
  type BusLimitsConfig,
} from './settings.js';
