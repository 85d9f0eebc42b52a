// NATS authority for the schemapin service's commands (DESIGN §3a; libs/nats-auth's table): on
// a private nats-server with exactly the configuration `bulwark init` writes, an enrolled agent
// may send bulwark.tools.verify, and nothing else of bulwark.tools.* (pin, approve, review,
// revoke, submit), neither on the queue subject nor on any instance's direct subject, nor listen
// where the service listens. The administrator may send every tools command; svc.schemapin may
// serve them in its queue group. Each refusal is the server's own permission violation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { errors, jwtAuthenticator, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { Commands, DIRECT_SUBJECT_ROOT, ServicePrincipals, type CommandSubject } from '@bulwark/bus';
import { loadNatsCredentials } from '@bulwark/nats-auth';
import { startPrivateBulwark, type PrivateBulwark } from './private-bulwark.js';

type Violation = InstanceType<typeof errors.PermissionViolationError>;

/** A raw connection with a principal's credentials (what any client holding them can do), recording the server's permission violations. */
class Raw {
  readonly violations: Violation[] = [];
  private constructor(readonly nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof errors.PermissionViolationError) this.violations.push(s.error);
    })();
  }

  static async as(b: PrivateBulwark, id: string): Promise<Raw> {
    const creds = await loadNatsCredentials(b.store, { kind: 'principal', id });
    if (creds === undefined) throw new Error(`no NATS credentials for ${id}`);
    return new Raw(await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 }));
  }

  /** The violation the server answered the attempt with, or undefined when it was allowed. */
  async #attempt(operation: 'publish' | 'subscription', subject: string, run: () => void): Promise<Violation | undefined> {
    const before = this.violations.length;
    run();
    await this.nc.flush();
    await new Promise((r) => setTimeout(r, 20));
    return this.violations.slice(before).find((v) => v.operation === operation && v.subject === subject);
  }

  publish(subject: string): Promise<Violation | undefined> {
    return this.#attempt('publish', subject, () => this.nc.publish(subject, '{}'));
  }

  subscribe(subject: string, queue?: string): Promise<Violation | undefined> {
    let sub: Subscription | undefined;
    return this.#attempt('subscription', subject, () => {
      sub = this.nc.subscribe(subject, queue === undefined ? {} : { queue });
    }).finally(() => sub?.unsubscribe());
  }
}

const ADMIN = 'analyst.admin';
const ADMIN_ONLY: readonly CommandSubject[] = [Commands.tools.pin, Commands.tools.approve, Commands.tools.review, Commands.tools.revoke, Commands.tools.submit];

describe('NATS permissions of bulwark.tools.*', () => {
  let b: PrivateBulwark;
  let ns: string;
  let agent: Raw;
  let admin: Raw;
  let service: Raw;
  const direct = (c: CommandSubject, instance = 'X1') => `${ns}${DIRECT_SUBJECT_ROOT}.${instance}.${c.slice('bulwark.'.length)}`;

  beforeAll(async () => {
    b = await startPrivateBulwark();
    ns = b.namespace.subjectPrefix;
    agent = await Raw.as(b, await b.addAgent());
    admin = await Raw.as(b, ADMIN);
    service = await Raw.as(b, ServicePrincipals.tools);
  }, 60_000);

  afterAll(async () => {
    for (const r of [agent, admin, service]) await r?.nc.close();
    await b?.stop();
  });

  it('an agent may ask to verify a tool, on the queue subject and on an instance', async () => {
    expect(await agent.publish(`${ns}${Commands.tools.verify}`)).toBeUndefined();
    expect(await agent.publish(direct(Commands.tools.verify))).toBeUndefined();
  });

  it('an agent may not pin, approve, review, revoke or submit: the server refuses each, queue and direct', async () => {
    for (const c of ADMIN_ONLY) {
      expect(await agent.publish(`${ns}${c}`), c).toBeDefined();
      expect(await agent.publish(direct(c)), `${c} (direct)`).toBeDefined();
    }
  });

  it("an agent may not serve or overhear the service: its queue group, its command and direct subjects", async () => {
    expect(await agent.subscribe(`${ns}${Commands.tools.verify}`, 'bulwark-tools')).toBeDefined();
    expect(await agent.subscribe(`${ns}${Commands.tools.approve}`)).toBeDefined();
    expect(await agent.subscribe(`${ns}${DIRECT_SUBJECT_ROOT}.*.>`)).toBeDefined();
  });

  it('the administrator may send every tools command; svc.schemapin may serve them in its queue group, and not send them', async () => {
    for (const c of Object.values(Commands.tools)) expect(await admin.publish(`${ns}${c}`), c).toBeUndefined();
    for (const c of Object.values(Commands.tools)) expect(await service.subscribe(`${ns}${c}`, 'bulwark-tools'), c).toBeUndefined();
    // Only in its own queue group: listening beside it would see every request.
    expect(await service.subscribe(`${ns}${Commands.tools.verify}`)).toBeDefined();
    expect(await service.publish(`${ns}${Commands.tools.approve}`)).toBeDefined();
  });
});
