import type { RegisterCommand } from '../io.js';
import { registerAuditCommand } from './audit.js';
import { registerConfigCommand } from './config.js';
import { registerIncidentCommand } from './incident.js';
import { registerInitCommand } from './init.js';
import { registerPolicyCommand } from './policy.js';
import { registerPolicyAdminCommand } from './policy-admin.js';
import { registerPrincipalCommand } from './principal.js';

/** Every `bulwark <area>` command module, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [registerAuditCommand, registerConfigCommand, registerIncidentCommand, registerInitCommand, registerPolicyCommand, registerPolicyAdminCommand, registerPrincipalCommand];
