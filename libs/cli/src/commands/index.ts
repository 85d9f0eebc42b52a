import type { RegisterCommand } from '../io.js';

/** Every `bulwark <area>` command module, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [];
