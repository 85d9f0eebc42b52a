import type { RegisterCommand } from '../io.js';
import { registerAuditCommand } from './audit.js';
import { registerConfigCommand } from './config.js';
import { registerDemoCommand } from './demo.js';
import { registerIncidentCommand } from './incident.js';
import { registerInitCommand } from './init.js';
import { registerKeysCommand } from './keys.js';
import { registerKeysBackupCommand } from './keys-backup.js';
import { registerKeysHsmCommand } from './keys-hsm.js';
import { registerKeysKekCommand } from './keys-kek.js';
import { registerPolicyCommand } from './policy.js';
import { registerPolicyAdminCommand } from './policy-admin.js';
import { registerPrincipalCommand } from './principal.js';
import { registerRecoverCommand } from './recover.js';
import { registerSandboxCommand } from './sandbox.js';
import { registerStatusCommand } from './status.js';
import { registerToolsCommand } from './tools.js';
import { registerUpCommand } from './up.js';

/** Every `bulwark <area>` command module, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [
  registerAuditCommand,
  registerConfigCommand,
  registerDemoCommand,
  registerIncidentCommand,
  registerInitCommand,
  registerKeysCommand,
  registerKeysBackupCommand,
  registerKeysHsmCommand,
  registerKeysKekCommand,
  registerPolicyCommand,
  registerPolicyAdminCommand,
  registerPrincipalCommand,
  registerRecoverCommand,
  registerSandboxCommand,
  registerStatusCommand,
  registerToolsCommand,
  registerUpCommand,
];
