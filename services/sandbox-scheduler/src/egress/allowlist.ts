import { BlockList, isIP } from 'node:net';
import { SandboxInputError } from '../errors.js';

/** One allowed destination (S6.3): a domain (`api.example.com`, `*.example.com`) or an IP range, ports, protocol. */
export interface EgressRule {
  readonly domain?: string;
  /** `a.b.c.d/n`, `::1/128`, or a single address. */
  readonly ipRange?: string;
  readonly ports: readonly number[];
  /** TCP only: the proxy tunnels streams (HTTP CONNECT); `https`/`http` are TCP as far as it is concerned. */
  readonly protocol: 'tcp' | 'http' | 'https';
}

export interface EgressAllowlist {
  readonly rules: readonly EgressRule[];
}

/** Parses `host:port` (CLI `--allow`): an IP, a CIDR, or a domain. */
export function parseAllowEntry(text: string): EgressRule {
  const m = /^(.+):(\d{1,5})$/.exec(text.trim());
  if (m?.[1] === undefined || m[2] === undefined) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: ${JSON.stringify(text)} is not host:port`, {});
  const host = m[1].replace(/^\[(.*)\]$/, '$1');
  const port = Number(m[2]);
  const base = { ports: [port], protocol: 'tcp' as const };
  return validateRule(isIP(host.split('/')[0] ?? '') !== 0 ? { ...base, ipRange: host } : { ...base, domain: host });
}

const DOMAIN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function validateRule(rule: EgressRule): EgressRule {
  if ((rule.domain === undefined) === (rule.ipRange === undefined)) throw new SandboxInputError('E_SANDBOX_EGRESS', 'egress: a rule names exactly one of domain, ipRange', {});
  if (rule.domain !== undefined && !DOMAIN.test(rule.domain.toLowerCase())) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: ${JSON.stringify(rule.domain)} is not a domain name`, {});
  if (rule.ipRange !== undefined) cidr(rule.ipRange);
  if (rule.ports.length === 0 || !rule.ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: ports must be 1..65535, got ${JSON.stringify(rule.ports)}`, {});
  if (!['tcp', 'http', 'https'].includes(rule.protocol)) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: protocol must be tcp, http or https, got ${JSON.stringify(rule.protocol)}`, {});
  return rule;
}

function cidr(range: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText] = range.split('/');
  const version = isIP(address);
  if (version === 0) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: ${JSON.stringify(range)} is not an IP range`, {});
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new SandboxInputError('E_SANDBOX_EGRESS', `egress: bad prefix in ${JSON.stringify(range)}`, {});
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function domainMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase().replace(/\.$/, '');
  return p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p;
}

/** Whether a name (as asked) may be connected to on a port, checked before any resolution. */
export function allowsName(list: EgressAllowlist, host: string, port: number): boolean {
  return list.rules.some((r) => r.domain !== undefined && r.ports.includes(port) && domainMatches(r.domain, host));
}

/** Whether an address (as it will be connected to) may be reached on a port. */
export function allowsAddress(list: EgressAllowlist, address: string, port: number): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return list.rules.some((r) => {
    if (r.ipRange === undefined || !r.ports.includes(port)) return false;
    const c = cidr(r.ipRange);
    const block = new BlockList();
    block.addSubnet(c.address, c.prefix, c.family);
    return block.check(address, family === 4 ? 'ipv4' : 'ipv6');
  });
}
