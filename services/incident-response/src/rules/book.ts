import type { Logger } from '@bulwark/telemetry';
import { loadRules, RuleLoadError, type Rule, type RuleSource } from './load.js';

/**
 * The rules in force. `replace` loads new sources; on any error the previous rules stay in
 * force and the error (file:line:column) is returned, never half a rule set.
 */
export class RuleBook {
  #rules: readonly Rule[];

  constructor(initial: readonly RuleSource[], private readonly log?: Logger) {
    this.#rules = loadRules(initial);
  }

  get rules(): readonly Rule[] {
    return this.#rules;
  }

  replace(sources: readonly RuleSource[]): { ok: true; rules: number } | { ok: false; error: RuleLoadError } {
    try {
      this.#rules = loadRules(sources);
      return { ok: true, rules: this.#rules.length };
    } catch (e) {
      if (!(e instanceof RuleLoadError)) throw e;
      this.log?.error({ code: e.code, file: e.file, line: e.line, column: e.column }, `rules not reloaded, the previous ones stay in force: ${e.message}`);
      return { ok: false, error: e };
    }
  }
}
