import { CompiledQuery } from 'kysely';
import type { DatabaseConnection, Dialect, Driver, Kysely, TransactionSettings } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { PGlite } from '@electric-sql/pglite';

/**
 * kysely-pglite-dialect with what it leaves out: transaction access modes, savepoints
 * (kysely's nested transactions) and a hook that runs once the instance is closed (to
 * release the data directory lock).
 */
export class EmbeddedDialect implements Dialect {
  readonly #inner: PGliteDialect;
  readonly #onDestroy: () => void;

  constructor(pglite: PGlite, onDestroy: () => void) {
    this.#inner = new PGliteDialect(pglite);
    this.#onDestroy = onDestroy;
  }

  createAdapter() {
    return this.#inner.createAdapter();
  }

  createDriver(): Driver {
    return new EmbeddedDriver(this.#inner.createDriver(), this.#onDestroy);
  }

  createQueryCompiler() {
    return this.#inner.createQueryCompiler();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- kysely's Dialect signature
  createIntrospector(db: Kysely<any>) {
    return this.#inner.createIntrospector(db);
  }
}

class EmbeddedDriver implements Driver {
  readonly #inner: Driver;
  #onDestroy: (() => void) | undefined;

  constructor(inner: Driver, onDestroy: () => void) {
    this.#inner = inner;
    this.#onDestroy = onDestroy;
  }

  init(): Promise<void> {
    return this.#inner.init();
  }

  acquireConnection(): Promise<DatabaseConnection> {
    return this.#inner.acquireConnection();
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(connection);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const parts = ['start transaction'];
    if (settings.isolationLevel) parts.push(`isolation level ${settings.isolationLevel}`);
    if (settings.accessMode) parts.push(settings.accessMode);
    await connection.executeQuery(CompiledQuery.raw(parts.join(' ')));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`));
  }

  async destroy(): Promise<void> {
    try {
      await this.#inner.destroy();
    } finally {
      const onDestroy = this.#onDestroy;
      this.#onDestroy = undefined;
      onDestroy?.();
    }
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
