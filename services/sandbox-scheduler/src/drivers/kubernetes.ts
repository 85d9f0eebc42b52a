import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { SandboxInputError } from '../errors.js';
import { specHash, type OciSpec, type SandboxLimits } from '../oci/spec.js';

export interface KubernetesJobOptions {
  /** The sandbox id: the Job's name and the pod label the network policy selects. */
  readonly id: string;
  readonly namespace: string;
  /** An image holding the workload's root filesystem. */
  readonly image: string;
  readonly limits: SandboxLimits;
  /** The RuntimeClass whose handler is runsc (default `gvisor`). */
  readonly runtimeClassName?: string;
  /**
   * A Localhost seccomp profile (deploy/seccomp/default.json installed under the kubelet's
   * seccomp root, e.g. `bulwark/default.json`); default RuntimeDefault.
   */
  readonly seccompLocalhostProfile?: string;
}

/** What the kubernetes form keeps of S1.3, and what it cannot say (stated, never hidden). */
export const KUBERNETES_KNOWN_LIMITS = [
  'capabilities: the restricted Pod Security Standard allows adding only NET_BIND_SERVICE, so SETUID/SETGID are dropped too (stricter than S1.3).',
  'pids: Kubernetes has no per-pod pids limit in the pod spec (the kubelet\'s podPidsLimit applies node-wide).',
  'network none: there is no "none" pod network; a NetworkPolicy denying all ingress and egress for the sandbox pod stands in (it needs a CNI that enforces NetworkPolicy).',
  'submission: this version builds and validates the Job and NetworkPolicy; it does not submit them to a cluster.',
] as const;

interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
}

/**
 * The exact Job (and its deny-all NetworkPolicy) the kubernetes driver submits for a spec:
 * runtimeClassName gvisor, the restricted Pod Security context (non-root, no privilege
 * escalation, all capabilities dropped, seccomp), read-only root, the spec's memory and CPU
 * as limits, the wall clock as activeDeadlineSeconds, no retries, no service account token.
 * Both objects are validated against the Kubernetes schemas (kubernetes-models) before return.
 */
export function buildKubernetesJob(spec: OciSpec, options: KubernetesJobOptions): { job: Job; networkPolicy: NetworkPolicy } {
  const proc = spec.process as unknown as ProcessSpec;
  if (proc.user.uid === 0) throw new SandboxInputError('E_SANDBOX_SPEC', 'kubernetes: the restricted Pod Security Standard refuses uid 0', {});
  const labels = { 'bulwark.sandbox': options.id };
  const env = proc.env.map((e) => {
    const i = e.indexOf('=');
    return { name: e.slice(0, i), value: e.slice(i + 1) };
  });
  const seccompProfile: { type: 'RuntimeDefault' | 'Localhost'; localhostProfile?: string } =
    options.seccompLocalhostProfile === undefined ? { type: 'RuntimeDefault' } : { type: 'Localhost', localhostProfile: options.seccompLocalhostProfile };
  const tmpfs = spec.mounts.filter((m) => m['type'] === 'tmpfs' && !String(m['destination']).startsWith('/dev'));
  const job = new Job({
    metadata: { name: options.id, namespace: options.namespace, labels, annotations: { 'bulwark.dev/spec-sha256': specHash(spec) } },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: Math.max(1, Math.ceil(options.limits.wallClockMs / 1000)),
      ttlSecondsAfterFinished: 600,
      template: {
        metadata: { labels },
        spec: {
          runtimeClassName: options.runtimeClassName ?? 'gvisor',
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          hostNetwork: false,
          hostPID: false,
          hostIPC: false,
          securityContext: { runAsNonRoot: true, runAsUser: proc.user.uid, runAsGroup: proc.user.gid, seccompProfile },
          containers: [
            {
              name: 'workload',
              image: options.image,
              command: proc.args,
              env,
              workingDir: proc.cwd,
              securityContext: {
                allowPrivilegeEscalation: false,
                privileged: false,
                readOnlyRootFilesystem: spec.root.readonly,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
                seccompProfile,
              },
              resources: {
                limits: { memory: String(options.limits.memoryBytes), cpu: `${Math.round(options.limits.cpus * 1000)}m` },
                requests: { memory: String(options.limits.memoryBytes), cpu: `${Math.round(options.limits.cpus * 1000)}m` },
              },
              volumeMounts: tmpfs.map((m, i) => ({ name: `tmp-${i}`, mountPath: String(m['destination']) })),
            },
          ],
          volumes: tmpfs.map((m, i) => {
            const size = /size=(\d+)/.exec((m['options'] as string[]).join(','))?.[1];
            return { name: `tmp-${i}`, emptyDir: { medium: 'Memory', ...(size === undefined ? {} : { sizeLimit: size }) } };
          }),
        },
      },
    },
  });
  const networkPolicy = new NetworkPolicy({
    metadata: { name: `${options.id}-deny-all`, namespace: options.namespace, labels },
    spec: { podSelector: { matchLabels: labels }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] },
  });
  job.validate();
  networkPolicy.validate();
  return { job, networkPolicy };
}
