import { Job } from 'kubernetes-models/batch/v1';
import { describe, expect, it } from 'vitest';
import { buildSpec, limitsOf } from '../oci/spec.js';
import { buildKubernetesJob } from './kubernetes.js';

const input = { args: ['/bin/sh', '-c', 'echo hi'], rootfs: '/r', cgroupsPath: '/b/x', limits: { wallClockMs: 30_500 }, tmpfs: [{ path: '/tmp', sizeBytes: 1 << 20 }] };

describe('the kubernetes Job', () => {
  const { job, networkPolicy } = buildKubernetesJob(buildSpec(input), { id: 'sbx-1', namespace: 'sandboxes', image: 'bulwark/busybox:1', limits: limitsOf(input) });
  const pod = job.spec?.template.spec;
  const container = pod?.containers[0];

  it('runs under the gvisor RuntimeClass with the restricted Pod Security context', () => {
    expect(job.toJSON()).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'sbx-1', namespace: 'sandboxes' } });
    expect(pod?.runtimeClassName).toBe('gvisor');
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65534, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container?.securityContext).toEqual({ allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, hostNetwork: false });
  });
  it('carries the spec limits, the wall clock as a deadline, and no retries', () => {
    expect(container?.resources?.limits).toEqual({ memory: String(512 << 20), cpu: '500m' });
    expect(job.spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 31 });
    expect(container?.command).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(pod?.volumes).toEqual([{ name: 'tmp-0', emptyDir: { medium: 'Memory', sizeLimit: '1048576' } }]);
  });
  it('comes with a NetworkPolicy denying all ingress and egress to the pod', () => {
    expect(networkPolicy.spec).toEqual({ podSelector: { matchLabels: { 'bulwark.sandbox': 'sbx-1' } }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
  });
  it('is valid against the Kubernetes schema, and the validator does catch a broken Job', () => {
    expect(() => job.validate()).not.toThrow();
    const json = JSON.parse(JSON.stringify(job.toJSON())) as { spec: { template: { spec: { containers: { resources: unknown }[] } } } };
    for (const c of json.spec.template.spec.containers) c.resources = { limits: { memory: { bad: true } } };
    const broken = new Job(json as never);
    expect(() => broken.validate()).toThrow();
  });
  it('refuses a spec running as root', () => {
    expect(() => buildKubernetesJob(buildSpec({ ...input, user: { uid: 0, gid: 0 } }), { id: 'r', namespace: 'n', image: 'i', limits: limitsOf(input) })).toThrow(/uid 0/);
  });
});
