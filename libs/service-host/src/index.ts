export { exitCodeOf, failureLine, ServiceExit } from './exit.js';
export {
  BOOT_GRACE_MS,
  readinessWith,
  runService,
  serviceMain,
  type BusCredentials,
  type EarlyContext,
  type RunningService,
  type RunOptions,
  type ServiceContext,
  type ServiceDefinition,
  type StopReason,
} from './host.js';
export { keyRotationIntervalMs, startServiceKeys, withPreviousKeys, type ServiceKeys, type ServiceKeysOptions } from './rotation.js';
export { keyRotationCheckMs, MIN_ROTATION_CHECK_MS } from './rotation-check.js';
export { SUPERVISOR_ENV, SUPERVISOR_STDIN, SupervisorModeError, watchSupervisor, type SupervisorWatch } from './supervisor-watch.js';
