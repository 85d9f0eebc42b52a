import type { RegisterCommand } from '../io.js';
import { registerConfigCommand } from './config.js';

/** Every `bulwark <area>` command module, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [registerConfigCommand];
