import type { RegisterCommand } from '../io.js';
import { registerConfigCommand } from './config.js';
import { registerInitCommand } from './init.js';
import { registerPolicyCommand } from './policy.js';

/** Every `bulwark <area>` command module, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [registerConfigCommand, registerInitCommand, registerPolicyCommand];
