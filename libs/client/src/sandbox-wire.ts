import { BulwarkError } from '@bulwark/errors';

/** The seed's RiskAssessment (S1.1), as the sandbox scheduler takes it. */
export interface SandboxAssessment {
  readonly data_sensitivity: number;
  readonly code_trust_level: number;
  readonly network_access: boolean;
  readonly filesystem_access: boolean;
  readonly external_apis: boolean;
}

/** An egress rule: `"host:port"` or `{ domain | ipRange, ports, protocol }`. */
export type SandboxEgressRule = string | { readonly domain?: string; readonly ipRange?: string; readonly ports: readonly number[]; readonly protocol: 'tcp' | 'http' | 'https' };

export interface SandboxScheduleRequest {
  readonly assessment: SandboxAssessment;
  /** `auto` (default): the score decides; 1 or 2 only raise the tier. */
  readonly tier?: 'auto' | 1 | 2;
  readonly args: readonly string[];
  readonly egress?: readonly SandboxEgressRule[];
  /**
   * The scheduler runs one request id once (per caller): a retry with the same id and request
   * gets the first run's outcome. 16-128 of A-Z a-z 0-9 _ -; default a fresh random one per call,
   * which the SDK's own retry (after a timeout) keeps. Give your own to retry across calls.
   */
  readonly requestId?: string;
}

export interface SandboxTierDecision {
  readonly score: number;
  readonly level: 'low' | 'medium' | 'high';
  readonly riskTier: 1 | 2;
  readonly tier: 1 | 2;
  readonly raisedBy?: 'floor' | 'request';
}

/** A sign of an escape attempt the runtime or kernel reported (also sealed to the ledger as `sandbox.escape_suspected`). */
export interface SandboxEscapeSign {
  readonly kind: 'denied_syscall' | 'capability_use' | 'read_only_write' | 'processes_past_limit';
  readonly source: 'kernel_log' | 'exit_signal' | 'gvisor_strace' | 'cgroup';
  readonly syscall?: string;
  readonly comm?: string;
  readonly path?: string;
  readonly count?: number;
}

export interface SandboxRunReply {
  readonly sandboxId: string;
  readonly driver: string;
  readonly tier: 1 | 2;
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly specHash: string;
  readonly runtimeFlags: readonly string[];
  readonly limitsExceeded: readonly string[];
  readonly escapeSigns: readonly SandboxEscapeSign[];
  /** Read from the sandbox's cgroup where the runtime leaves it (runc): limits as applied, peaks, counters. */
  readonly usage: Readonly<Record<string, number>>;
  readonly durationMs: number;
  readonly warm: boolean;
}

export interface SandboxScheduleReply {
  readonly decision: SandboxTierDecision;
  readonly run: SandboxRunReply;
  readonly egress?: readonly { readonly host: string; readonly port: number; readonly allowed: boolean; readonly reason: string }[];
}

/** `bulwark.sandbox.*`: these throw (a BulwarkError: E_SANDBOX_DENIED, E_SANDBOX_ASSESSMENT, ...) rather than deny. */
export interface SandboxCalls {
  assess(assessment: SandboxAssessment, tier?: 'auto' | 1 | 2): Promise<{ assessment: SandboxAssessment; decision: SandboxTierDecision }>;
  schedule(request: SandboxScheduleRequest, options?: { timeoutMs?: number }): Promise<SandboxScheduleReply>;
  status(sandboxId?: string): Promise<Record<string, unknown>>;
  terminate(target: { sandboxId: string } | { agentId: string }): Promise<{ killed: string[] }>;
  logs(sandboxId: string): Promise<{ sandboxId: string; stdout: string; stderr: string }>;
}

type Call = (subject: 'assess' | 'schedule' | 'status' | 'terminate' | 'logs', body: unknown, timeoutMs: number) => Promise<unknown>;

const object = (v: unknown, what: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BulwarkError('E_SANDBOX_REPLY', `malformed reply to bulwark.sandbox.${what}`, {});
  return v as Record<string, unknown>;
};

/** The calls over a request function; a schedule waits for the workload (default 120 s). `requestId` draws a schedule's id when the caller gives none. */
export function sandboxCalls(call: Call, requestId: () => string): SandboxCalls {
  return {
    assess: async (assessment, tier) => object(await call('assess', tier === undefined ? { assessment } : { assessment, tier }, 5000), 'assess') as never,
    schedule: async (request, options) => {
      const r = object(await call('schedule', { ...request, requestId: request.requestId ?? requestId() }, options?.timeoutMs ?? 120_000), 'schedule');
      object(r['run'], 'schedule');
      return r as unknown as SandboxScheduleReply;
    },
    status: async (sandboxId) => object(await call('status', sandboxId === undefined ? {} : { sandboxId }, 5000), 'status'),
    terminate: async (target) => object(await call('terminate', target, 30_000), 'terminate') as never,
    logs: async (sandboxId) => object(await call('logs', { sandboxId }, 5000), 'logs') as never,
  };
}
