import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ServicePrincipals, type ServiceName } from '@bulwark/bus';
import { BulwarkError } from '@bulwark/errors';

/**
 * Every service `bulwark up` starts and `bulwark status` expects: the one list. A new
 * service joins with one entry (its package must have a `bin`, and answer `$SRV.*` as
 * `bulwark-<bus>`).
 */
export interface ServiceSpec {
  /** The service's name (its folder, its log file `<name>.log`). */
  readonly name: string;
  /** The bus's name for it: `$SRV` name `bulwark-<bus>`, command subjects `bulwark.<bus>.*`. */
  readonly bus: ServiceName;
  /** The principal whose identity the process runs as (its keys, its NATS user). */
  readonly principal: string;
  /** The npm package holding the process; its only `bin` is run with this Node. */
  readonly package: string;
  /** Whether it opens the database (with PGlite: its own directory under `<home>/db`). */
  readonly database: boolean;
  /** The services that must be ready before it starts (those that replay the ledger at start ask the ledger for what the stream lacks). */
  readonly startsAfter: readonly string[];
}

export const SERVICES: readonly ServiceSpec[] = [
  { name: 'audit-ledger', bus: 'audit', principal: ServicePrincipals.audit, package: '@bulwark/audit-ledger', database: true, startsAfter: [] },
  { name: 'policy', bus: 'policy', principal: ServicePrincipals.policy, package: '@bulwark/policy', database: false, startsAfter: ['audit-ledger'] },
  { name: 'key-manager', bus: 'keys', principal: ServicePrincipals.keys, package: '@bulwark/key-manager', database: false, startsAfter: ['audit-ledger'] },
  { name: 'schemapin', bus: 'tools', principal: ServicePrincipals.tools, package: '@bulwark/schemapin-service', database: false, startsAfter: ['audit-ledger'] },
  { name: 'sandbox-scheduler', bus: 'sandbox', principal: ServicePrincipals.sandbox, package: '@bulwark/sandbox-scheduler', database: false, startsAfter: ['audit-ledger'] },
  { name: 'incident-response', bus: 'incident', principal: ServicePrincipals.incident, package: '@bulwark/incident-response', database: false, startsAfter: ['audit-ledger'] },
];

/**
 * The services in start stages: each stage's services need only those of earlier stages
 * (`startsAfter`). A name that is not in the list, or a cycle, is a programming error.
 */
export function startStages(specs: readonly ServiceSpec[]): ServiceSpec[][] {
  const names = new Set(specs.map((s) => s.name));
  for (const s of specs) {
    const unknown = s.startsAfter.find((n) => !names.has(n));
    if (unknown !== undefined) throw new BulwarkError('E_SERVICE_ORDER', `service ${s.name} starts after ${unknown}, which is not a service`, { service: s.name });
  }
  const done = new Set<string>();
  const stages: ServiceSpec[][] = [];
  while (done.size < specs.length) {
    const stage = specs.filter((s) => !done.has(s.name) && s.startsAfter.every((n) => done.has(n)));
    if (stage.length === 0) throw new BulwarkError('E_SERVICE_ORDER', `the services' start order has a cycle among ${specs.filter((s) => !done.has(s.name)).map((s) => s.name).join(', ')}`);
    for (const s of stage) done.add(s.name);
    stages.push(stage);
  }
  return stages;
}

const require = createRequire(import.meta.url);

/** The package.json of an installed package (its `exports` need not list package.json). */
function manifestOf(name: string): string {
  let dir = dirname(require.resolve(name));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === name) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json of ${name}`);
    dir = parent;
  }
}

/** The entry point of a service's process, from its package's `bin`. */
export function serviceEntryPoint(spec: ServiceSpec): string {
  let manifest: string;
  try {
    manifest = manifestOf(spec.package);
  } catch (cause) {
    throw new BulwarkError('E_SERVICE_MISSING', `service ${spec.name}: package ${spec.package} is not installed (npm install)`, { service: spec.name }, { cause });
  }
  const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: Record<string, string> }).bin;
  const entry = bin === undefined ? undefined : Object.values(bin)[0];
  if (entry === undefined) throw new BulwarkError('E_SERVICE_MISSING', `service ${spec.name}: ${spec.package} has no bin`, { service: spec.name });
  return join(dirname(manifest), entry);
}
