/**
 * The poisoning rules against the corpus in libs/schemapin/corpus/: every poisoned
 * description (each technique of issue 13) is flagged with a High or Critical finding of the
 * right kind; no ordinary tool description (public MCP servers' style) gets a High one.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { reviewSchema, type KnownTool } from './scan.js';

const corpus = (name: string): unknown => JSON.parse(readFileSync(new URL(`../../corpus/${name}`, import.meta.url), 'utf8'));
const poisoned = corpus('poisoned.json') as { id: string; technique: string; tool: unknown; known_tools?: KnownTool[] }[];
const benign = corpus('benign.json') as { name: string }[];

const expectedRule: Record<string, RegExp> = {
  unicode_tags: /^SP-POISON-TAGS$/,
  zero_width: /^SP-POISON-ZW$/,
  bidi: /^SP-POISON-BIDI$/,
  html_comment: /^SP-POISON-HTMLCOMMENT$/,
  markdown_comment: /^SP-POISON-MDCOMMENT$/,
  base64_blob: /^SP-POISON-BASE64$/,
  pseudo_tag: /^SP-POISON-PSEUDOTAG$/,
  imperative: /^SP-POISON-(IGNORE|CONCEAL|ADDRESS)$/,
  secrets: /^SP-POISON-SECRETS$/,
  exfiltration: /^SP-POISON-EXFIL$/,
  shadowing: /^SP-SHADOW-OTHERTOOL$/,
  name_collision: /^SP-SHADOW-COLLISION$/,
  name_lookalike: /^SP-SHADOW-LOOKALIKE$/,
  shadowing_mentions: /^SP-SHADOW-MENTIONS$/,
};

describe('poisoned corpus', () => {
  it('has at least 30 cases covering every technique', () => {
    expect(poisoned.length).toBeGreaterThanOrEqual(30);
    expect(new Set(poisoned.map((p) => p.technique))).toEqual(new Set(Object.keys(expectedRule)));
  });
  for (const p of poisoned) {
    it(`${p.id} (${p.technique}) is flagged High or above, and not approved`, () => {
      const result = reviewSchema(p.tool, { domain: 'provider.example', knownTools: p.known_tools ?? [] });
      const hits = result.findings.filter((f) => expectedRule[p.technique]!.test(f.rule_id));
      expect(hits, JSON.stringify(result.findings)).not.toHaveLength(0);
      expect(hits.some((f) => f.severity === 'high' || f.severity === 'critical')).toBe(true);
      expect(result.recommendation).not.toBe('approve');
    });
  }
});

describe('ordinary corpus', () => {
  it('has at least 30 tools', () => expect(benign.length).toBeGreaterThanOrEqual(30));
  for (const tool of benign) {
    it(`${tool.name} has no High or Critical finding`, () => {
      const result = reviewSchema(tool, { domain: 'provider.example' });
      expect(result.findings.filter((f) => f.severity === 'high' || f.severity === 'critical'), JSON.stringify(result.findings)).toEqual([]);
    });
  }
});

describe('review engine', () => {
  it('scans a 1 MB description of rule-shaped text in well under a second (no catastrophic backtracking)', () => {
    const hostile = `${'<!-- '.repeat(50_000)}${'a'.repeat(200_000)}${' ignore the '.repeat(20_000)}${'[x]: '.repeat(50_000)}`;
    const started = performance.now();
    const result = reviewSchema({ name: 't', description: hostile });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(result.recommendation).not.toBe('approve');
  });
  it('flags a parameter meant to carry hidden context, and shell parameters', () => {
    const ids = reviewSchema({ name: 'add', description: 'Adds.', inputSchema: { type: 'object', properties: { a: { type: 'integer' }, sidenote: { type: 'string' }, command: { type: 'string' } } } }).findings.map((f) => f.rule_id);
    expect(ids).toEqual(expect.arrayContaining(['SP-POISON-HIDDENPARAM', 'SP-VULN-SHELL', 'SP-VULN-UNBOUNDED']));
  });
  it('finds invisible characters in keys and enum values too, not only in descriptions', () => {
    const tag = String.fromCodePoint(0xe0041);
    expect(reviewSchema({ name: 'x', description: 'ok', inputSchema: { properties: { [`a${tag}`]: { type: 'string', enum: [`b\u200b`] } } } }).findings.map((f) => f.rule_id)).toEqual(
      expect.arrayContaining(['SP-POISON-TAGS', 'SP-POISON-ZW']),
    );
  });
  it('tools of the same provider do not collide', () => {
    expect(reviewSchema({ name: 'send_email', description: 'Sends.' }, { domain: 'mail.example.com', knownTools: [{ toolId: 'send_email', domain: 'mail.example.com', name: 'send_email' }] }).findings).toEqual([]);
  });
  it('every rule is data with an id, a severity and an ATLAS technique, ids unique', async () => {
    const { RULES } = await import('./rules.js');
    expect(new Set(RULES.map((r) => r.id)).size).toBe(RULES.length);
    for (const r of RULES) expect(r.atlas).toMatch(/^AML\.T\d{4}(\.\d{3})?$/);
  });
});
