import { InputError } from '@bulwark/errors';

// Unquoted PostgreSQL identifiers fold to lower case; restricting names to this
// alphabet means a schema name never needs quoting and cannot inject SQL.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws `InputError` `E_DB_SCHEMA` unless `name` is a plain, non-system PostgreSQL schema name. */
export function assertSchemaName(name: string): void {
  if (!SCHEMA_NAME.test(name)) {
    throw new InputError(
      'E_DB_SCHEMA',
      `schema name "${name}" is invalid: use 1-63 characters of a-z, 0-9 and _, not starting with a digit`,
      { schema: name },
    );
  }
  if (name.startsWith('pg_') || name === 'information_schema') {
    throw new InputError('E_DB_SCHEMA', `schema name "${name}" is reserved by PostgreSQL`, { schema: name });
  }
}
