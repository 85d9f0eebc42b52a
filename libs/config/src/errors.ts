import { InputError } from '@bulwark/errors';

/**
 * A configuration value from the environment or the TOML file is unknown, of the wrong
 * type or out of range. The message names the first problem on one line (with `(+N more)`
 * when there are others); `context.problems` lists every one.
 */
export class ConfigError extends InputError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options?: { cause?: unknown }) {
    const [first = 'invalid configuration', ...rest] = problems;
    const message = rest.length > 0 ? `${first} (+${rest.length} more)` : first;
    super('E_CONFIG', message, { problems: [...problems] }, options);
    this.problems = Object.freeze([...problems]);
  }
}
