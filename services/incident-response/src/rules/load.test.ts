import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { EventView } from './condition.js';
import { DEFAULT_RULES_FILE } from './files.js';
import { RuleBook } from './book.js';
import { loadRules, RuleLoadError } from './load.js';

const ev = (over: Partial<EventView> & { details?: EventView['details'] } = {}): EventView => ({
  seq: 1,
  eventId: 'e1',
  timestamp: 1000,
  producer: 'svc.policy',
  agentId: 'agent.a1',
  eventType: 'policy.decision',
  details: { decision: 'Deny', reason: 'no' },
  ...over,
});
const one = (text: string) => loadRules([{ file: 'r.yaml', text }]);

describe('detector rules', () => {
  it('loads the shipped rules', () => {
    const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
    expect(rules.map((r) => r.name)).toContain('policy_deny_burst');
    const burst = rules.find((r) => r.name === 'policy_deny_burst')!;
    expect(burst).toMatchObject({ severity: 'high', category: 'policy_violation', correlate: { windowMs: 10_000, threshold: 20, kind: 'count' } });
    expect(burst.match(ev())).toBe(true);
    expect(burst.match(ev({ details: { decision: 'Allow' } }))).toBe(false);
    expect(burst.match(ev({ agentId: 'svc.policy' }))).toBe(false);
  });

  it('evaluates operators, lists, macros and details paths', () => {
    const [r] = one(`
- list: bad
  items: [agent.x, agent.y]
- macro: denied
  condition: evt.details.decision = Deny
- rule: r
  condition: denied and evt.agent in (bad, agent.z) and evt.details.n.m >= 3 and not evt.details.reason contains "ok" and evt.details.tags intersects (t1)
  output: o
  priority: WARNING
`);
    const base = ev({ agentId: 'agent.y', details: { decision: 'Deny', n: { m: 3 }, reason: 'bad', tags: ['t0', 't1'] } });
    expect(r!.match(base)).toBe(true);
    expect(r!.severity).toBe('medium');
    expect(r!.match({ ...base, agentId: 'agent.q' })).toBe(false);
    expect(r!.match({ ...base, details: { ...base.details, n: { m: 2 } } })).toBe(false);
    expect(r!.match({ ...base, details: { ...base.details, reason: 'is ok' } })).toBe(false);
    expect(r!.match({ ...base, details: { decision: 'Deny', reason: 'bad', tags: ['t1'] } })).toBe(false); // missing field: false
  });

  it('applies exceptions and overrides (append, replace) in file order', () => {
    const rules = loadRules([
      { file: 'a.yaml', text: `- list: l\n  items: [agent.a]\n- rule: r\n  condition: evt.agent in (l)\n  output: o\n  priority: HIGH\n` },
      {
        file: 'b.yaml',
        text: `- list: l\n  items: [agent.b]\n  override: { items: append }\n- rule: r\n  condition: and evt.type = policy.decision\n  override: { condition: append }\n- rule: r\n  exceptions: [{ name: quiet, fields: [evt.agent, evt.details.reason], comps: ['=', in], values: [[agent.b, [x, y]]] }]\n  override: { exceptions: append }\n`,
      },
    ]);
    const r = rules[0]!;
    expect(r.match(ev({ agentId: 'agent.b', details: { reason: 'z' } }))).toBe(true);
    expect(r.match(ev({ agentId: 'agent.b', details: { reason: 'y' } }))).toBe(false); // the exception
    expect(r.match(ev({ agentId: 'agent.a', eventType: 'policy.violation' }))).toBe(false); // the appended condition
    const replaced = loadRules([
      { file: 'a.yaml', text: `- rule: r\n  condition: evt.type = x\n  output: o\n  priority: HIGH\n` },
      { file: 'b.yaml', text: `- rule: r\n  condition: evt.type = policy.decision\n  override: { condition: replace }\n` },
    ]);
    expect(replaced[0]!.match(ev())).toBe(true);
  });

  it.each([
    ['- rule: r\n  condition: evt.type = = x\n  output: o\n  priority: HIGH\n', 2, 'expected a value'],
    ['- rule: r\n  output: o\n  priority: HIGH\n  condition: evt.nope = 1\n', 4, 'unknown field evt.nope'],
    ['- rule: r\n  condition: missing_macro\n  output: o\n  priority: HIGH\n', 2, 'unknown macro'],
    ['- rule: r\n  condition: evt.type = x\n  output: o\n  priority: LOUD\n', 4, 'priority "loud"'],
    ['- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: r\n  condition: a\n  output: o\n  priority: LOW\n', 1, 'refers to itself'],
    ['- rule: r\n  condition: evt.type = x\n  output: o\n  priority: LOW\n  correlate: { window: 10 years, count: 2 }\n', 5, 'duration'],
    ['- rule: r\n  condition: evt.type = x\n  bogus: 1\n  output: o\n  priority: LOW\n', 3, 'unknown key "bogus"'],
    ['- rule: r\n  condition: "unterminated\n', 3, ''],
    ['- rule: r\n  condition: evt.type = x\n  override: { condition: append }\n', 1, 'override of a rule that is not defined'],
  ])('reports a bad file with its line (%#)', (text, line, why) => {
    let error: unknown;
    try {
      one(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RuleLoadError);
    expect((error as RuleLoadError).line).toBe(line);
    expect((error as RuleLoadError).message).toMatch(/^r\.yaml:\d+:\d+: /);
    expect((error as RuleLoadError).message).toContain(why);
  });

  it('keeps the previous rules in force when a new file does not load', () => {
    const book = new RuleBook([{ file: 'a.yaml', text: '- rule: r\n  condition: evt.type = policy.decision\n  output: o\n  priority: HIGH\n' }]);
    const before = book.rules;
    const result = book.replace([{ file: 'a.yaml', text: '- rule: r\n  condition: evt.type =\n  output: o\n  priority: HIGH\n' }]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error.message).toMatch(/^a\.yaml:2:/);
    expect(book.rules).toBe(before);
    expect(book.rules[0]!.match(ev())).toBe(true);
  });
});
