import { discoverService, type Bus } from '@bulwark/bus';
import type { RunState } from '../home/state.js';
import { SERVICES, type ServiceSpec } from './services.js';

export interface ServiceStatus {
  readonly name: string;
  readonly instances: number;
  readonly ready: boolean;
  /** Why it is not ready (empty when ready). */
  readonly reason: string;
  readonly subjects: readonly string[];
  /** The Prometheus endpoint `bulwark up` gave it. */
  readonly metrics?: string;
  /** The health endpoint's report, when it has one. */
  readonly health?: Record<string, unknown>;
}

async function health(port: number): Promise<{ ok: boolean; body: Record<string, unknown> } | { ok: false; error: string }> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1500) });
    const body = (await response.json()) as Record<string, unknown>;
    return { ok: response.ok && body['ready'] === true, body };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Every listed service's instances and readiness: `$SRV.INFO` and `$SRV.STATS` on the bus
 * (NATS connected, streams present), and, for the processes `bulwark up` runs, their health
 * endpoint (which adds the service's own checks, e.g. the ledger's database).
 */
export async function probeServices(bus: Bus, state: RunState | undefined, specs: readonly ServiceSpec[] = SERVICES): Promise<ServiceStatus[]> {
  return Promise.all(
    specs.map(async (spec): Promise<ServiceStatus> => {
      const instances = await discoverService(bus, spec.bus).catch(() => []);
      const subjects = [...new Set(instances.flatMap((i) => i.subjects))].sort();
      const port = state?.services.find((s) => s.name === spec.name)?.metricsPort;
      const metrics = port === undefined ? {} : { metrics: `http://127.0.0.1:${port}/metrics` };
      if (instances.length === 0) return { name: spec.name, instances: 0, ready: false, reason: `no instance answers $SRV.INFO.bulwark-${spec.bus}`, subjects, ...metrics };
      const notReady = instances.find((i) => i.readiness?.ready !== true);
      if (notReady !== undefined) {
        const reason = notReady.readiness === undefined ? `instance ${notReady.id} did not answer $SRV.STATS` : notReady.readiness.reason;
        return { name: spec.name, instances: instances.length, ready: false, reason, subjects, ...metrics };
      }
      if (port === undefined) return { name: spec.name, instances: instances.length, ready: true, reason: '', subjects };
      const h = await health(port);
      const reason = h.ok ? '' : 'error' in h ? `health endpoint: ${h.error}` : `health endpoint: ${String(h.body['reason'] ?? 'not ready')}`;
      return { name: spec.name, instances: instances.length, ready: h.ok, reason, subjects, ...metrics, ...('body' in h ? { health: h.body } : {}) };
    }),
  );
}

/** What a ready service's health report adds for the operator (`note`, e.g. the sandbox scheduler's "no driver"). */
function noteOf(s: ServiceStatus): string {
  const note = s.health?.['note'];
  return typeof note === 'string' && note !== '' ? ` (${note})` : '';
}

/** The status table: service, instances, ready, subjects (and the metrics endpoint). */
export function statusTable(services: readonly ServiceStatus[]): string {
  const rows = [
    ['service', 'instances', 'ready', 'subjects', 'metrics'],
    ...services.map((s) => [s.name, String(s.instances), s.ready ? `yes${noteOf(s)}` : `no: ${s.reason}`, String(s.subjects.length), s.metrics ?? '-']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** The readiness report a recovery plan carries (services/incident-response `recovery.ts`): who is ready, and why not. */
export function healthReport(services: readonly ServiceStatus[]): { ready: boolean; services: { name: string; ready: boolean; reason: string }[] } {
  return { ready: services.every((s) => s.ready), services: services.map((s) => ({ name: s.name, ready: s.ready, reason: s.reason })) };
}
