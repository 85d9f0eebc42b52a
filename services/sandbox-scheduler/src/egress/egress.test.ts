import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuncDriver } from '../drivers/runc.js';
import { makeTestRootfs, skipReason, type TestRootfs } from '../drivers/testing.js';
import { Scheduler } from '../service/scheduler.js';
import { allowsAddress, allowsName, parseAllowEntry, validateRule } from './allowlist.js';

describe('egress allowlist rules', () => {
  it('parses host:port into an IP range or a domain rule', () => {
    expect(parseAllowEntry('127.0.0.1:5432')).toEqual({ ipRange: '127.0.0.1', ports: [5432], protocol: 'tcp' });
    expect(parseAllowEntry('10.0.0.0/8:6333')).toEqual({ ipRange: '10.0.0.0/8', ports: [6333], protocol: 'tcp' });
    expect(parseAllowEntry('api.openai.com:443')).toEqual({ domain: 'api.openai.com', ports: [443], protocol: 'tcp' });
    expect(() => parseAllowEntry('nope')).toThrow(/not host:port/);
    expect(() => parseAllowEntry('1.2.3.4/33:80')).toThrow(/bad prefix/);
    expect(() => validateRule({ domain: 'x.com', ports: [70000], protocol: 'tcp' })).toThrow(/ports must be/);
  });
  it('matches addresses by range and port, names exactly or by wildcard suffix', () => {
    const list = { rules: [{ ipRange: '10.0.0.0/8', ports: [6333], protocol: 'http' as const }, { domain: '*.example.com', ports: [443], protocol: 'https' as const }] };
    expect(allowsAddress(list, '10.1.2.3', 6333)).toBe(true);
    expect(allowsAddress(list, '10.1.2.3', 6334)).toBe(false);
    expect(allowsAddress(list, '11.0.0.1', 6333)).toBe(false);
    expect(allowsName(list, 'api.example.com', 443)).toBe(true);
    expect(allowsName(list, 'example.com', 443)).toBe(false);
    expect(allowsName(list, 'evil-example.com', 443)).toBe(false);
    expect(allowsName(list, 'api.example.com.attacker.net', 443)).toBe(false);
  });
});

const reason = skipReason('runc');
describe.skipIf(reason !== undefined)(`egress through the proxy under runc${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
  let fs: TestRootfs;
  let scheduler: Scheduler;
  const servers: Server[] = [];
  let portA = 0;
  let portB = 0;
  const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: true, filesystem_access: false, external_apis: false };

  const serve = async (banner: string): Promise<number> => {
    const s = createServer((c) => c.end(`${banner}\n`));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return (s.address() as AddressInfo).port;
  };
  const connectVia = (port: number) => `(printf 'CONNECT 127.0.0.1:${port} HTTP/1.1\\r\\n\\r\\n'; sleep 1) | nc 127.0.0.1 3128`;

  beforeAll(async () => {
    fs = makeTestRootfs();
    scheduler = new Scheduler({ drivers: { 1: createRuncDriver({ stateRoot: join(fs.dir, 'state'), bundleRoot: join(fs.dir, 'bundles') }) }, rootfs: fs.rootfs, floor: 1, cgroupParent: 'bulwark-test' });
    portA = await serve('HELLO-A');
    portB = await serve('HELLO-B');
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    fs?.cleanup();
  });

  it('reaches the allowlisted local server through the proxy and not another one; every attempt is recorded', async () => {
    const script = `${connectVia(portA)}; echo ---; ${connectVia(portB)}; echo ---; nc -w 1 127.0.0.1 ${portA} </dev/null || echo DIRECT-REFUSED`;
    const r = await scheduler.schedule({ assessment: LOW, args: ['/bin/sh', '-c', script], egress: { rules: [parseAllowEntry(`127.0.0.1:${portA}`)] } });
    const [viaA, viaB, direct] = r.run.stdout.split('---\n');
    expect(viaA).toContain('200 Connection Established');
    expect(viaA).toContain('HELLO-A');
    expect(viaB).toContain('403 Forbidden');
    expect(viaB).not.toContain('HELLO-B');
    expect(direct).toContain('DIRECT-REFUSED');
    expect(r.egress?.map((a) => [a.port, a.allowed])).toEqual([[portA, true], [portB, false]]);
    // The same workload with B on the list reaches B: the refusal above is the allowlist's doing.
    const open = await scheduler.schedule({ assessment: LOW, args: ['/bin/sh', '-c', connectVia(portB)], egress: { rules: [parseAllowEntry(`127.0.0.1:${portA}`), parseAllowEntry(`127.0.0.1:${portB}`)] } });
    expect(open.run.stdout).toContain('HELLO-B');
  });

  it('still cannot reach PostgreSQL on the host, allowlist or not, except through the proxy', async () => {
    const r = await scheduler.schedule({ assessment: LOW, args: ['/bin/sh', '-c', 'nc -w 1 127.0.0.1 5432 </dev/null && echo CONNECTED || echo REFUSED'], egress: { rules: [parseAllowEntry(`127.0.0.1:${portA}`)] } });
    expect(r.run.stdout).toContain('REFUSED');
  });

  it('refuses an allowlist for a workload placed in Tier 2', async () => {
    await expect(scheduler.schedule({ assessment: { ...LOW, code_trust_level: 0 }, args: ['/bin/true'], egress: { rules: [parseAllowEntry(`127.0.0.1:${portA}`)] } })).rejects.toMatchObject({ code: 'E_SANDBOX_EGRESS' });
  });
});
