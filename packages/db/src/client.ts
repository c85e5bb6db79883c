import type { ExtractTablesWithRelations } from 'drizzle-orm';
import type { NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PgTransaction } from 'drizzle-orm/pg-core';
import pg from 'pg';
import * as schema from './schema';

export type Schema = typeof schema;
export type Database = NodePgDatabase<Schema>;
export type Transaction = PgTransaction<NodePgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Anything queries can run on: the pool-backed database or an open transaction. */
export type Queryable = Database | Transaction;

export interface DbHandle {
  db: Database;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function createDb(
  connectionString: string,
  options: {
    max?: number;
    applicationName?: string;
    /**
     * false: every statement is sent unnamed (parsed per execution). PgBouncer in transaction mode
     * before 1.21 (no max_prepared_statements) hands a session's named statements to whichever
     * client runs next, so "prepared statement does not exist" / "already exists" would follow.
     */
    preparedStatements?: boolean;
  } = {},
): DbHandle {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'certq',
    // A dead connection must surface as an error, never hang a job forever.
    connectionTimeoutMillis: 10_000,
  });
  // An idle client losing its connection emits here; without a listener the process would crash.
  pool.on('error', () => {});
  // So does a checked-out client between two statements (a transaction waiting on the application,
  // a cut connection, a server restart): pg emits 'error' on the client, which has no listener then.
  // The error still reaches the next query on that client, and the pool discards it when released.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  if (options.preparedStatements === false) {
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((config: unknown, ...rest: unknown[]) => {
        if (config && typeof config === 'object' && 'name' in config) {
          const { name: _unnamed, ...unnamed } = config as Record<string, unknown>;
          return query(unnamed, ...rest);
        }
        return query(config, ...rest);
      }) as typeof client.query;
    });
  }
  const db = drizzle(pool, { schema });
  return { db, pool, close: () => pool.end() };
}
