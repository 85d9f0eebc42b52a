export { SandboxInputError, SandboxRuntimeError, SandboxUnavailableError } from './errors.js';
export { parseAssessment, riskScore, type RiskAssessment } from './risk/assessment.js';
export {
  chooseTier,
  DEFAULT_THRESHOLDS,
  floorTier,
  parseThresholds,
  parseTierRequest,
  riskLevel,
  tierForLevel,
  type RiskLevel,
  type RiskThresholds,
  type Tier,
  type TierDecision,
  type TierRequest,
} from './risk/tier.js';
export { buildSpec, limitsOf, specHash, validateLimits, SANDBOX_USER, TIER1_CAPABILITIES, TIER1_LIMITS, type OciSpec, type SandboxLimits, type SpecInput } from './oci/spec.js';
export { defaultSeccompProfile, DEFAULT_SECCOMP_PATH, type SeccompProfile } from './oci/seccomp.js';
export { buildBusyboxRootfs, findBusybox } from './oci/rootfs.js';
export { OciRuntimeDriver, type OciRuntimeOptions } from './drivers/oci-runtime.js';
export { createRuncDriver, RUNC_KNOWN_LIMITS, type RuntimeDriverOptions } from './drivers/runc.js';
export { createRunscDriver, GVISOR_FLAGS, RUNSC_KNOWN_LIMITS } from './drivers/runsc.js';
export { readUsage, cgroupVersion } from './drivers/cgroup.js';
export { describeSign, mergeSigns, signsFromExit, SIGSYS_EXIT, type EscapeSign, type EscapeSignKind, type EscapeSignSource } from './monitor/signs.js';
export { KernelLog, parseSeccompRecord, sharedKernelLog, withAuditLoginUid, type SeccompRecord } from './monitor/kernel-log.js';
export { signsFromStrace, STRACED_SYSCALLS } from './monitor/gvisor-strace.js';
export { KILLED_SYSCALLS } from './monitor/syscalls.js';
export type { DriverName, DriverStatus, LimitKind, RunRequest, SandboxDriver, SandboxRun, SandboxUsage } from './drivers/types.js';
export { WarmPool, LAUNCHER_ARGS, shellQuote, type WarmPoolOptions } from './warm/pool.js';
export { Scheduler, type SchedulerOptions, type ScheduleRequest, type Scheduled } from './service/scheduler.js';
export { DEFAULT_DOCKER_IMAGE, DEFAULT_SANDBOX_ROOT, dockerDrivers, hostDrivers, KUBERNETES_STATUS, temporaryRootfs } from './service/host.js';
export { DockerDriver, dockerCreateOptions, type DockerDriverOptions } from './drivers/docker.js';
export { buildKubernetesJob, KUBERNETES_KNOWN_LIMITS, type KubernetesJobOptions } from './drivers/kubernetes.js';
export { startSandboxService, type SandboxService, type SandboxServiceOptions } from './service/service.js';
export { createHandlers, runSummary, SandboxDeniedError, type AskPolicy, type HandlerDeps } from './service/handlers.js';
export { createSandboxEvents, type SandboxEventType, type SandboxEvents } from './service/events.js';
export { allowsAddress, allowsName, parseAllowEntry, validateRule, type EgressAllowlist, type EgressRule } from './egress/allowlist.js';
export { EgressProxy, type EgressAttempt } from './egress/proxy.js';
export { EGRESS_PROXY_PORT, startEgressNamespace, type EgressNamespace } from './egress/netns.js';
