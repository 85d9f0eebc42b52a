// What an operator plugs in (DESIGN §9, issue 11): a system started by `bulwark up` (its own
// nats-server, PGlite) with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver this
// test runs. A policy decision moves the policy service's Prometheus decision counter, and
// the service's span for it arrives at the receiver as a child of the client's span: the
// trace id crossed the bus.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBulwarkClient } from '@bulwark/client';
import { createTelemetry } from '@bulwark/telemetry';
import { homeAt } from '../libs/cli/src/home/home.js';
import { homeEnvironment } from '../libs/cli/src/home/environment.js';
import { openSession, type Session } from '../libs/cli/src/home/session.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'libs/cli/bin/bulwark.js');
const home = mkdtempSync(join(tmpdir(), 'bulwark-otel-'));

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

/** OTLP/HTTP JSON (what @opentelemetry/exporter-trace-otlp-http sends): /v1/traces and /v1/metrics. */
function otlpReceiver(): { server: Server; spans: { service: string; span: OtlpSpan }[]; metricPosts: number } {
  const state = { spans: [] as { service: string; span: OtlpSpan }[], metricPosts: 0 };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const parsed = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of parsed.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const span of ss.spans) state.spans.push({ service, span });
        }
      } else if (req.url === '/v1/metrics') {
        state.metricPosts++;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return Object.assign(state, { server });
}

let receiver: ReturnType<typeof otlpReceiver>;
let up: ChildProcess;
let upOutput = '';
let admin: Session;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s; bulwark up said: ${upOutput}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function metricsUrlOf(service: string): string {
  const state = JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as { services: { name: string; metricsPort: number }[] };
  return `http://127.0.0.1:${state.services.find((s) => s.name === service)!.metricsPort}/metrics`;
}

/** The sum of a Prometheus counter's samples whose labels include `labels`. */
function counter(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

beforeAll(async () => {
  receiver = otlpReceiver();
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', () => resolve()));
  const endpoint = `http://127.0.0.1:${(receiver.server.address() as { port: number }).port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_METRIC_EXPORT_INTERVAL: '1000' };
  for (const name of ['NATS_URL', 'DATABASE_URL', 'SYMBIONT_KEK', 'SYMBIONT_KEK_FILE', 'SYMBIONT_HOME', 'SYMBIONT_KEY_DIR', 'SYMBIONT_ROOT_PUBLIC_KEY']) delete env[name];
  up = spawn(process.execPath, [CLI, 'up', '--dir', home, '--ready-timeout', '150'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout!.on('data', (b: Buffer) => (upOutput += b.toString()));
  up.stderr!.on('data', (b: Buffer) => (upOutput += b.toString()));
  await until('bulwark up ready', () => (upOutput.includes('Bulwark is up') ? true : undefined), 170_000);
  const h = homeAt(home);
  admin = await openSession({ env: homeEnvironment(h, {}), cwd: ROOT, principal: 'analyst.admin', name: 'otel-test' });
}, 180_000);

afterAll(async () => {
  await admin?.close();
  if (up !== undefined && up.exitCode === null) {
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  }
  receiver?.server.close();
  rmSync(home, { recursive: true, force: true });
});

describe('observability of a running system', () => {
  it('moves the Prometheus decision counter, and the service span arrives over OTLP in the client span\'s trace', { timeout: 60_000 }, async () => {
    const url = metricsUrlOf('policy');
    expect(upOutput).toContain(url);
    const labels = { decision: 'Deny', policy: 'none' };
    const before = counter(await (await fetch(url)).text(), 'bulwark_policy_decisions_total', labels);

    // The client's span: the bus carries its context in the request's traceparent header.
    const clientTelemetry = createTelemetry({ service: 'otel-test-client' });
    const client = createBulwarkClient({ bus: admin.bus, sessions: { provider: admin.provider, self: { id: admin.identity.id, x25519: admin.identity.x25519 }, directory: admin.directory } });
    const { decision, traceId, spanId } = await clientTelemetry.tracer.startActiveSpan('agent decides', async (span) => {
      // No policy allows this: the default deny, decided by the service.
      const d = await client.policy.evaluate({ action: 'invoke', resource: 'nothing_allows_this', context: {} }, { timeoutMs: 5000 });
      span.end();
      return { decision: d, traceId: span.spanContext().traceId, spanId: span.spanContext().spanId };
    });
    expect(decision).toMatchObject({ decision: 'Deny', policy: null });
    expect(decision.decision === 'Deny' && decision.failure).toBeUndefined();

    const after = await until(
      'the decision counter moves',
      async () => {
        const value = counter(await (await fetch(url)).text(), 'bulwark_policy_decisions_total', labels);
        return value > before ? value : undefined;
      },
      10_000,
    );
    expect(after).toBe(before + 1);
    const text = await (await fetch(url)).text();
    expect(text).toMatch(/bulwark_rpc_server_duration[a-z_]*_bucket\{.*subject="bulwark\.policy\.evaluate"/);

    const serviceSpan = await until(
      'the policy span at the OTLP receiver',
      () => receiver.spans.find((s) => s.service === 'bulwark-policy' && s.span.traceId === traceId && s.span.name === 'bulwark.policy.evaluate'),
      15_000,
    );
    expect(serviceSpan.span.parentSpanId).toBe(spanId);
    // An envelope rejection: a handshake from a principal the directory does not know is
    // dropped (the caller's wait ends in a Deny) and counted by reason.
    const ghost = createBulwarkClient({
      bus: admin.bus,
      sessions: { provider: admin.provider, self: { id: 'analyst.ghost', x25519: admin.provider.x25519.generateKeyPair() }, directory: admin.directory },
    });
    const refused = await ghost.policy.evaluate({ action: 'invoke', resource: 'x', context: {} }, { timeoutMs: 500 });
    expect(refused.decision === 'Deny' && refused.failure).toBeTruthy();
    await until(
      'the rejection counter',
      async () => {
        const total = counter(await (await fetch(url)).text(), 'bulwark_bus_rejected_frames_total', {});
        return total > 0 ? total : undefined;
      },
      10_000,
    );
    await until('metrics over OTLP', () => (receiver.metricPosts > 0 ? true : undefined), 10_000);
    const ledgerMetrics = await (await fetch(metricsUrlOf('audit-ledger'))).text();
    expect(ledgerMetrics).toMatch(/^bulwark_ledger_size\{[^}]*\} \d+$/m);
    expect(ledgerMetrics).toMatch(/bulwark_stream_bytes\{.*stream="BULWARK_EVENTS"/);
    await clientTelemetry.shutdown();
  });
});
