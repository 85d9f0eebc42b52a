export { NatsAuthError } from './errors.js';
export {
  ADMIN_CALLS,
  AGENT_CALLS,
  ANALYST_CALLS,
  analystChannelConsumers,
  analystConsumers,
  LEDGER_DURABLE_NAME,
  OPERATOR_USER,
  OPERATOR_USER_NAME,
  SERVICE_CALLS,
  SERVICE_EVENT_ROOTS,
  inboxPrefixFor,
  permissionsFor,
  principalToken,
  serviceDurables,
  type BusPermissions,
  type BusRole,
  type DurableGrant,
} from './permissions.js';
export { encodeNkeySeed, nkeyPair, publicNkey } from './nkey.js';
export { ACCOUNT_NAME, DEFAULT_ACCOUNT_LIMITS, OPERATOR_NAME, SYSTEM_ACCOUNT_NAME, issueAccountJwt, issueUserJwt, sameClaims, verifyJwt, type AccountLimits } from './jwts.js';
export { ensureNatsAuthority, loadNatsAuthority, type EnsureAuthorityResult, type NatsAuthority } from './authority.js';
export { busCredentialsFor, ensureNatsUser, formatCreds, loadNatsCredentials, readCredsFile, storeNatsUser, storeRenewedJwt, writeCredsFile, type EnsureUserResult, type NatsCredentials } from './users.js';
export { MAX_CONTROL_LINE, MAX_USER_JWT_LENGTH, NATS_CONFIG_FILE, natsServerConfig, writeNatsServerConfig, type NatsServerConfigOptions } from './server-config.js';
export { directoryEntryFor, enrollPrincipal, type Enrolment, type EnrollOptions } from './enroll.js';
export { exportPrincipalKeys } from './export.js';
