import { createHash } from 'node:crypto';
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
    /**
     * How many distinct statement texts each connection sends by name (prepared once, then only bound
     * and executed): Postgres parses and analyses such a text once per connection instead of at every
     * execution. Texts past the cap go unnamed, so generated texts (bulk VALUES, IN lists) cannot grow a
     * connection's cache without bound. Postgres may then switch a statement to a generic plan after
     * five executions when it costs no more than the custom ones: right for lookups by key (the
     * worker's), not necessarily for listings over skewed data. 0 (default): only the statements the
     * code prepares by name itself. Ignored when preparedStatements is false.
     */
    statementsByText?: number;
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
  const byText = options.statementsByText ?? 0;
  if (options.preparedStatements !== false && byText > 0) {
    pool.on('connect', (client) => prepareByText(client, byText));
  }
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

/**
 * Gives every unnamed statement of `client` that carries parameters a name derived from its text, for the
 * first `max` texts. Only those: a statement with parameters goes through the extended protocol already,
 * so it is one command and naming it changes nothing else; one without parameters may hold several
 * commands (`reset a; reset b`), which only the simple protocol runs. A submittable (a pg Query or
 * cursor object) is passed on as it is.
 */
function prepareByText(client: pg.PoolClient, max: number): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const names = new Map<string, string>();
  client.query = ((config: unknown, ...rest: unknown[]) => {
    const plain = typeof config === 'object' && config !== null && !('submit' in config);
    const text = typeof config === 'string' ? config : plain ? (config as { text?: string }).text : undefined;
    const values = Array.isArray(rest[0])
      ? rest[0]
      : plain
        ? (config as { values?: unknown }).values
        : undefined;
    const named = plain && Boolean((config as { name?: string }).name);
    if (text !== undefined && !named && Array.isArray(values) && values.length > 0) {
      let name = names.get(text);
      if (name === undefined && names.size < max) {
        // The text decides the name: the same name for another text would be refused by pg.
        name = `certq_${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
        names.set(text, name);
      }
      if (name !== undefined)
        return query(typeof config === 'string' ? { text, name } : { ...(config as object), name }, ...rest);
    }
    return query(config, ...rest);
  }) as typeof client.query;
}
