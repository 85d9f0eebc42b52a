/**
 * The administrator a home's `bulwark up` enrolls: the principal `bulwark demo`, `bulwark
 * status` and `bulwark policy push|list|rollback` act as by default, and the one the policy
 * service it starts lists in `SYMBIONT_POLICY_ADMINS`.
 */
export const ADMIN_PRINCIPAL = 'analyst.admin';
