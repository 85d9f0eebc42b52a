export { StoreError } from './errors.js';
export { parseDatabaseUrl, maskDatabaseUrl } from './url.js';
export type { DatabaseTarget } from './url.js';
export { assertSchemaName } from './schema-name.js';
export { createDatabase, checkDatabase, closeDatabase, databaseInfo } from './database.js';
export type { DatabaseOptions, DatabaseInfo, DatabaseHealth } from './database.js';
export { migrateToLatest, rollbackMigration, migrationStatus } from './migrate.js';
export type { Migration, Migrations, MigrationReport, MigrationState } from './migrate.js';
export { sqlState, isUniqueViolation } from './sql-state.js';
// Services write queries with kysely; taking it from here keeps one kysely version.
export { sql } from 'kysely';
export type { Kysely, Transaction, Generated, ColumnType, Selectable, Insertable, Updateable } from 'kysely';
