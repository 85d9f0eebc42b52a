// `npm run bench -- sandbox [--n 30]`: schedule-to-first-output per tier, cold and warm, against the
// raw runtime running the same bundle in the same run (issue 14), and assessments/s.
// One JSON line per figure on stdout (DESIGN §11); notes go to stderr.
//
// Method. A busybox rootfs is built once in a temp dir. Each round takes, in turn: `raw:runc`
// (spawn `runc run` of a bundle written beforehand, until its first stdout byte), `bulwark` cold
// (Scheduler.schedule: assessment, tier choice, spec build, bundle write, `runc run --keep`), and
// `bulwark:warm` (Scheduler.schedule served by the warm pool: `runc start` of a pre-created
// container); the same for Tier 2 with `raw:runsc` and cold runsc (Tier 2 has no warm pool).
// The workload is `/bin/sh -c 'echo x'`. Clean-up (delete, refill) is outside the timed span.
// Needs root, runc, runsc and busybox-static.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildBusyboxRootfs,
  buildSpec,
  chooseTier,
  createRuncDriver,
  createRunscDriver,
  GVISOR_FLAGS,
  parseAssessment,
  Scheduler,
  WarmPool,
} from '@bulwark/sandbox-scheduler';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const N = arg('n', 30);
const ARGS = ['/bin/sh', '-c', 'echo x'];
const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const HIGH = { data_sensitivity: 1, code_trust_level: 0, network_access: true, filesystem_access: false, external_apis: false };

const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-sandbox-'));
const rootfs = buildBusyboxRootfs(join(dir, 'rootfs'));
const runc = createRuncDriver({ stateRoot: join(dir, 'runc'), bundleRoot: join(dir, 'b1') });
const runsc = createRunscDriver({ stateRoot: join(dir, 'runsc'), bundleRoot: join(dir, 'b2') });
const poolSpec = (id: string) => buildSpec({ args: ['/bin/true'], rootfs, cgroupsPath: `/bulwark-bench/${id}` });
const pool = new WarmPool({ driver: runc, size: 2, specFor: poolSpec, limits: { memoryBytes: 512 << 20, cpus: 0.5, pids: 64, wallClockMs: 60_000 }, idPrefix: `bench-warm-${process.pid}` });
const cold = new Scheduler({ drivers: { 1: runc, 2: runsc }, rootfs, cgroupParent: 'bulwark-bench' });
const warm = new Scheduler({ drivers: { 1: runc, 2: runsc }, pools: { 1: pool }, rootfs, cgroupParent: 'bulwark-bench' });

/** The bare runtime: `<bin> --root S [flags] run --bundle B id`, timed to the first stdout byte. */
function rawRun(bin: string, flags: readonly string[], state: string, bundle: string, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | undefined;
    const child = spawn(bin, ['--root', state, ...flags, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.once('data', () => (first = performance.now() - t0));
    child.once('error', reject);
    child.once('close', () => {
      spawnSync(bin, ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
      if (first === undefined) reject(new Error(`${bin}: no output`));
      else resolve(first);
    });
  });
}

function rawBundle(name: string, adapt: (s: ReturnType<typeof buildSpec>) => unknown): string {
  const bundle = join(dir, `raw-${name}`);
  mkdirSync(bundle);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(adapt(buildSpec({ args: ARGS, rootfs, cgroupsPath: `/bulwark-bench/raw-${name}` }))));
  return bundle;
}
const rawRuncBundle = rawBundle('runc', (s) => s);
const rawRunscBundle = rawBundle('runsc', (s) => runsc.options.adapt?.(s) ?? s);
mkdirSync(join(dir, 'raw-state'));

async function firstOutput(scheduler: Scheduler, assessment: unknown): Promise<{ ms: number; warm: boolean }> {
  const t0 = performance.now();
  let first: number | undefined;
  const r = await scheduler.schedule({ assessment, args: ARGS, onOutput: () => (first ??= performance.now() - t0) });
  if (first === undefined || r.run.stdout !== 'x\n') throw new Error(`bench: unexpected output ${JSON.stringify(r.run.stdout)} ${r.run.stderr}`);
  return { ms: first, warm: r.run.warm };
}

const samples: Record<string, number[]> = {};
const add = (key: string, v: number): void => void (samples[key] ??= []).push(v);

try {
  await pool.fill();
  for (let i = 0; i < N; i++) {
    add('tier1|raw:runc', await rawRun('runc', [], join(dir, 'raw-state'), rawRuncBundle, `raw-runc-${i}`));
    add('tier1|bulwark', (await firstOutput(cold, LOW)).ms);
    const w = await firstOutput(warm, LOW);
    if (!w.warm) throw new Error('bench: the warm pool was empty');
    add('tier1|bulwark:warm', w.ms);
    await pool.fill();
    add('tier2|raw:runsc', await rawRun('runsc', [...GVISOR_FLAGS], join(dir, 'raw-state'), rawRunscBundle, `raw-runsc-${i}`));
    add('tier2|bulwark', (await firstOutput(cold, HIGH)).ms);
  }
  const pct = (xs: number[], p: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
  };
  for (const [key, xs] of Object.entries(samples)) {
    const [tier, impl] = key.split('|') as [string, string];
    for (const p of [50, 99]) {
      console.log(JSON.stringify({ bench: 'sandbox', figure: `${tier}.schedule_to_first_output.p${p}`, impl, value: Math.round(pct(xs, p) * 1000), unit: 'us', n: xs.length }));
    }
  }
  // Assessments per second: parse + score + tier choice of a JSON-decoded assessment.
  const inputs = Array.from({ length: 1024 }, (_, i) => ({ ...LOW, data_sensitivity: (i % 101) / 100, external_apis: i % 3 === 0 }));
  let sink = 0;
  const t0 = performance.now();
  let count = 0;
  while (performance.now() - t0 < 1000) {
    for (const a of inputs) sink += chooseTier(parseAssessment(a)).tier;
    count += inputs.length;
  }
  console.log(JSON.stringify({ bench: 'sandbox', figure: 'assess', impl: 'bulwark', value: Math.round(count / ((performance.now() - t0) / 1000)), unit: 'ops/s', n: count }));
  process.stderr.write(`sandbox bench: ${N} rounds; sink ${sink}\n`);
  for (const tier of ['tier1', 'tier2']) {
    const raw = samples[`${tier}|raw:${tier === 'tier1' ? 'runc' : 'runsc'}`] ?? [];
    for (const impl of ['bulwark', 'bulwark:warm']) {
      const xs = samples[`${tier}|${impl}`];
      if (xs !== undefined) process.stderr.write(`${tier} ${impl} ÷ raw at p50: ${(pct(xs, 50) / pct(raw, 50)).toFixed(2)}\n`);
    }
  }
} finally {
  await pool.stop();
  rmSync(dir, { recursive: true, force: true });
}
