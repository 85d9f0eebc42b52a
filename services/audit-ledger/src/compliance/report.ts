/** generateComplianceReport (seed S4.3 generate_compliance_report): the report as JSON or readable Markdown. */
import type { ComplianceFramework } from './framework.js';
import { validateCompliance, type CompliancePeriod, type ComplianceReport, type ComplianceSource } from './validate.js';

export type ReportFormat = 'json' | 'markdown';

/** Seqs shown per finding in Markdown, to keep it readable; the JSON report carries up to MAX_FINDING_SEQS. */
const MARKDOWN_SEQS = 20;

export async function generateComplianceReport(
  source: ComplianceSource,
  framework: ComplianceFramework,
  period: CompliancePeriod,
  format: ReportFormat = 'json',
): Promise<{ readonly report: ComplianceReport; readonly text: string }> {
  const report = await validateCompliance(source, framework, period);
  return { report, text: renderComplianceReport(report, format) };
}

export function renderComplianceReport(report: ComplianceReport, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'markdown':
      return complianceMarkdown(report);
    default: {
      const unknown: never = format;
      throw new Error(`unknown report format ${String(unknown)}`);
    }
  }
}

/** Table cells must not break the table. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function complianceMarkdown(report: ComplianceReport): string {
  const out: string[] = [];
  out.push(`# ${report.framework.name} compliance report`, '');
  out.push(`- Period: ${report.period.from} to ${report.period.to}`);
  out.push(`- Generated: ${report.generatedAt}`);
  out.push(`- Result: **${report.compliant ? 'COMPLIANT' : 'NON-COMPLIANT'}** (${report.findings.length} finding${report.findings.length === 1 ? '' : 's'})`);
  out.push(`- Chain verification: ${report.chain.ok ? 'verified' : 'FAILED'}: ${report.chain.message}`);
  out.push(`- Retention: ${report.retention.ok ? 'ok' : 'NOT MET'}: ${report.retention.message} (events before ${report.retention.cutoff} may be archived)`, '');

  out.push('## Requirements', '', '| requirement | kind | events | result |', '|---|---|---:|---|');
  for (const r of report.requirements) out.push(`| ${cell(r.id)}: ${cell(r.description)} | ${r.kind} | ${r.events} | ${r.passed ? 'pass' : '**fail**'} |`);
  out.push('');

  out.push('## Findings', '');
  if (report.findings.length === 0) out.push('None.');
  for (const f of report.findings) {
    const shown = f.seqs.slice(0, MARKDOWN_SEQS);
    const seqs = shown.length === 0 ? '' : `; seq ${shown.join(', ')}${f.count > shown.length ? `, … (${f.count - shown.length} more; the JSON report lists ${f.seqs.length})` : ''}`;
    out.push(`- **${cell(f.requirement)}** (${f.kind}, ${f.count}): ${f.message}${seqs}`);
  }
  out.push('');

  out.push(`## Events in the period (${report.totalEvents})`, '');
  const types = Object.entries(report.countsByType);
  if (types.length === 0) out.push('None.');
  else {
    out.push('| event type | count |', '|---|---:|');
    for (const [type, n] of types) out.push(`| ${cell(type)} | ${n} |`);
  }
  out.push('');
  return out.join('\n');
}
