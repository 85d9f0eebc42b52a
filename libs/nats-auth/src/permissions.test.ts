import { describe, expect, it } from 'vitest';
import { Commands, ROOT_NAMESPACE, ServicePrincipals, uniqueNamespace, type Namespace } from '@bulwark/bus';
import { isBulwarkError } from '@bulwark/errors';
import { analystConsumers, inboxPrefixFor, OPERATOR_USER, permissionsFor, principalToken, type BusPermissions, type BusRole } from './permissions.js';

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const mayPublish = (perms: BusPermissions, subject: string) => perms.publish.some((p) => matches(p, subject));
/** A subscription with `queue` (or none): an entry `"subject queue"` allows only that queue; a plain entry any. */
const maySubscribe = (perms: BusPermissions, subject: string, queue?: string) =>
  perms.subscribe.some((entry) => {
    const [pattern, q] = entry.split(' ');
    return matches(pattern!, subject) && (q === undefined || q === queue);
  });

const AGENT = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
const ns: Namespace = { streamPrefix: 'T_ab_', subjectPrefix: 't.ab.' };
const principal = (id: string, admin = false): BusRole => ({ kind: 'principal', id, admin });
const everyone: readonly BusRole[] = [...Object.values(ServicePrincipals).map((id) => principal(id)), principal(AGENT), principal('analyst.j_doe'), principal('analyst.admin', true), OPERATOR_USER];
const roleName = (r: BusRole) => (r.kind === 'operator' ? 'operator' : r.id);
const allowed = (predicate: (perms: BusPermissions) => boolean) => everyone.filter((r) => predicate(permissionsFor(r, ns))).map(roleName);

describe('permissionsFor (DESIGN §3a)', () => {
  it('lets only the ledger publish under bulwark.ledger.>', () => {
    expect(allowed((p) => mayPublish(p, 't.ab.bulwark.ledger.batch') || mayPublish(p, 't.ab.bulwark.ledger.control.svc.policy'))).toEqual(['svc.audit-ledger']);
  });

  it('lets only the key manager and the operator write the directory bucket', () => {
    expect(allowed((p) => mayPublish(p, '$KV.T_ab_BULWARK_DIRECTORY.svc.policy'))).toEqual(['svc.key-manager', 'operator']);
  });

  it('lets only the operator delete, purge, update or create a stream, or delete a consumer', () => {
    for (const verb of ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.UPDATE', 'STREAM.CREATE', 'STREAM.MSG.DELETE']) {
      for (const stream of ['T_ab_BULWARK_EVENTS', 'T_ab_BULWARK_LEDGER', 'KV_T_ab_BULWARK_DIRECTORY']) expect(allowed((p) => mayPublish(p, `$JS.API.${verb}.${stream}`))).toEqual(['operator']);
    }
    expect(allowed((p) => mayPublish(p, '$JS.API.CONSUMER.DELETE.T_ab_BULWARK_EVENTS.audit-ledger'))).toEqual(['operator']);
  });

  it('lets services, and no one else, raise security violations and alerts', () => {
    const services = Object.values(ServicePrincipals);
    expect(allowed((p) => mayPublish(p, 't.ab.bulwark.evt.security.violation'))).toEqual(services);
    expect(allowed((p) => mayPublish(p, 't.ab.bulwark.evt.alert.raised'))).toEqual(services);
    // The policy service reads the ledger's ack floor (strict mode), and may not pull from it.
    expect(allowed((p) => mayPublish(p, '$JS.API.CONSUMER.INFO.T_ab_BULWARK_EVENTS.audit-ledger'))).toEqual(['svc.policy', 'svc.audit-ledger', 'operator']);
  });

  it("gives the ledger's durable to the ledger alone, with its one filter", () => {
    for (const s of ['$JS.API.CONSUMER.MSG.NEXT.T_ab_BULWARK_EVENTS.audit-ledger', '$JS.ACK.T_ab_BULWARK_EVENTS.audit-ledger.1.2.3.4.0', '$JS.API.CONSUMER.CREATE.T_ab_BULWARK_EVENTS.audit-ledger.t.ab.bulwark.evt.>']) {
      expect(allowed((p) => mayPublish(p, s))).toEqual(['svc.audit-ledger', 'operator']);
    }
    // The old create API (filter in the body, unchecked) is nobody's but the operator's.
    expect(allowed((p) => mayPublish(p, '$JS.API.CONSUMER.DURABLE.CREATE.T_ab_BULWARK_EVENTS.audit-ledger'))).toEqual(['operator']);
  });

  it('binds per-instance durables on the ledger stream to the service’s own control subject', () => {
    const policy = permissionsFor(principal('svc.policy'), ns);
    expect(mayPublish(policy, '$JS.API.CONSUMER.CREATE.T_ab_BULWARK_LEDGER.policy-1.t.ab.bulwark.ledger.control.svc.policy')).toBe(true);
    expect(mayPublish(policy, '$JS.API.CONSUMER.CREATE.T_ab_BULWARK_LEDGER.policy-1.t.ab.bulwark.ledger.control.svc.key-manager')).toBe(false);
    // The full batches: any service may consume them (it opens them only as a subscriber of the ledger's channel); no agent or analyst may.
    expect(mayPublish(policy, '$JS.API.CONSUMER.CREATE.T_ab_BULWARK_LEDGER.policy-1.t.ab.bulwark.ledger.batch')).toBe(true);
    expect(allowed((p) => mayPublish(p, '$JS.API.CONSUMER.CREATE.T_ab_BULWARK_LEDGER.x-1.t.ab.bulwark.ledger.batch')).filter((id) => !id.startsWith('svc.') && id !== 'operator')).toEqual([]);
  });

  it('lets each service take its own command subjects in its own queue group only', () => {
    for (const [service, id] of Object.entries(ServicePrincipals)) {
      for (const command of Object.values(Commands[service as keyof typeof Commands])) {
        const subject = `t.ab.${command}`;
        expect(allowed((p) => maySubscribe(p, subject, `bulwark-${service}`))).toEqual([id]);
        expect(allowed((p) => maySubscribe(p, subject))).toEqual([]);
        expect(allowed((p) => maySubscribe(p, subject, 'evil'))).toEqual([]);
      }
    }
  });

  it('gives each principal its own inbox and nobody another’s', () => {
    for (const role of everyone) {
      const perms = permissionsFor(role, ns);
      expect(maySubscribe(perms, `${inboxPrefixFor(role)}.abc.1`)).toBe(true);
      for (const other of everyone) if (other !== role) expect(maySubscribe(perms, `${inboxPrefixFor(other)}.abc.1`)).toBe(false);
      expect(maySubscribe(perms, '_INBOX.abc.1')).toBe(false);
    }
    expect(inboxPrefixFor(principal('svc.policy'))).toBe('_INBOX.svc_policy');
    expect(principalToken(principal(AGENT))).toBe(`agent_${AGENT.slice('agent.'.length)}`);
  });

  it('keeps $SRV to the operator (asking) and the services (answering for their own name)', () => {
    expect(allowed((p) => mayPublish(p, '$SRV.PING'))).toEqual(['operator']);
    expect(allowed((p) => maySubscribe(p, '$SRV.PING'))).toEqual(Object.values(ServicePrincipals));
    expect(allowed((p) => maySubscribe(p, '$SRV.INFO.bulwark-policy'))).toEqual(['svc.policy']);
    expect(allowed((p) => p.respond)).toEqual(Object.values(ServicePrincipals));
  });

  it('lets agents call the agent commands and publish only their own lifecycle events and bus.rejected', () => {
    const agent = permissionsFor(principal(AGENT), ns);
    expect(mayPublish(agent, 't.ab.bulwark.policy.evaluate')).toBe(true);
    expect(mayPublish(agent, 't.ab.bulwark.direct.inst1.policy.evaluate')).toBe(true);
    expect(mayPublish(agent, 't.ab.bulwark.policy.admin.register')).toBe(false);
    expect(mayPublish(agent, 't.ab.bulwark.direct.inst1.policy.admin.register')).toBe(false);
    expect(mayPublish(agent, `t.ab.bulwark.evt.agent.${AGENT.slice(6)}.started`)).toBe(true);
    expect(mayPublish(agent, 't.ab.bulwark.evt.agent.00000000-0000-4000-8000-000000000000.started')).toBe(false);
    expect(mayPublish(agent, 't.ab.bulwark.evt.bus.rejected')).toBe(true);
    expect(mayPublish(agent, 't.ab.bulwark.evt.policy.decision')).toBe(false);
    expect(agent.subscribe).toEqual([`${inboxPrefixFor(principal(AGENT))}.>`]);
  });

  it('gives administrators policy administration; analysts only the incident commands', () => {
    // svc.incident-response contains agents by a policy change (it must also be in policy.admins).
    expect(allowed((p) => mayPublish(p, 't.ab.bulwark.policy.admin.register')).sort()).toEqual(['analyst.admin', 'svc.incident-response']);
    expect(mayPublish(permissionsFor(principal('analyst.j_doe'), ns), 't.ab.bulwark.incident.ack')).toBe(true);
    expect(mayPublish(permissionsFor(principal('analyst.j_doe'), ns), 't.ab.bulwark.incident.high.x')).toBe(false);
    expect(allowed((p) => mayPublish(p, 't.ab.bulwark.incident.high.x'))).toEqual(['svc.incident-response']);
  });

  it("lets an analyst create only its own SOC durables, each bound to its own copies of one severity", () => {
    const ann = permissionsFor(principal('analyst.ann'), ns);
    const create = (durable: string, filter: string) => mayPublish(ann, `$JS.API.CONSUMER.CREATE.T_ab_BULWARK_INCIDENTS.${durable}.t.ab.${filter}`);
    expect(analystConsumers('analyst.ann').map((g) => `${g.durable} ${g.filter}`)).toEqual(
      ['info', 'low', 'medium', 'high', 'critical'].map((s) => `analyst_ann_${s} bulwark.incident.${s}.*.analyst%2Eann`),
    );
    expect(create('analyst_ann_high', 'bulwark.incident.high.*.analyst%2Eann')).toBe(true);
    expect(create('analyst_ann_high', 'bulwark.incident.*.>')).toBe(false);
    expect(create('analyst_ann_high', 'bulwark.incident.high.>')).toBe(false);
    expect(create('analyst_ann_high', 'bulwark.incident.high.*.analyst%2Ebob')).toBe(false);
    expect(create('analyst_ann_low', 'bulwark.incident.high.*.analyst%2Eann')).toBe(false);
    expect(create('analyst_bob_high', 'bulwark.incident.high.*.analyst%2Ebob')).toBe(false);
    // Names never collide across analysts (a name with "_" included).
    const names = ['analyst.ann', 'analyst.ann_high', 'analyst.ann_high_low'].flatMap((id) => analystConsumers(id).map((g) => g.durable));
    expect(new Set(names).size).toBe(names.length);
  });

  it('puts every Bulwark subject in the namespace: nothing of one namespace reaches another', () => {
    const other = uniqueNamespace();
    for (const role of everyone.filter((r) => r.kind === 'principal')) {
      const perms = permissionsFor(role, ns);
      for (const p of perms.publish) if (p.includes('bulwark.')) expect(p.startsWith('t.ab.') || p.includes('.t.ab.'), p).toBe(true);
      expect(perms.publish.some((p) => p.includes(other.streamPrefix) || p.includes(other.subjectPrefix))).toBe(false);
    }
    expect(permissionsFor(principal('svc.policy'), ROOT_NAMESPACE).subscribe).toContain('bulwark.policy.evaluate bulwark-policy');
  });

  it('refuses ids the table does not know', () => {
    const code = (role: BusRole) => {
      try {
        permissionsFor(role, ns);
      } catch (e) {
        return isBulwarkError(e) ? e.code : 'other';
      }
      return 'none';
    };
    expect(code(principal('svc.unknown'))).toBe('E_NATS_PRINCIPAL');
    expect(code(principal('root'))).toBe('E_NATS_PRINCIPAL');
    expect(code(principal('agent.a1'))).toBe('E_NATS_PRINCIPAL');
    expect(code(principal(AGENT, true))).toBe('E_NATS_PRINCIPAL');
    expect(code(principal('svc.policy', true))).toBe('E_NATS_PRINCIPAL');
  });
});
