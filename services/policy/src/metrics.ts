import type { Telemetry } from '@bulwark/telemetry';
import type { Decision } from '@bulwark/policy-language';

/**
 * The policy service's own instruments (the bus adds command latency and envelope
 * rejections): `bulwark.policy.decisions` by decision kind and deciding policy.
 */
export function observePolicyService(meter: Telemetry['meter']): (decision: Decision) => void {
  const decisions = meter.createCounter('bulwark.policy.decisions', { description: 'policy decisions by kind' });
  return (decision) => decisions.add(1, { decision: decision.decision, policy: decision.policy ?? 'none' });
}
