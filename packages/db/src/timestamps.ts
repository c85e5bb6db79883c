import { type SQL, type SQLWrapper, sql } from 'drizzle-orm';

/**
 * A timestamptz rendered exactly, in UTC, with Postgres's microseconds: keyset cursors compare
 * against it, and a JS Date would drop the microseconds and skip or repeat rows.
 */
export const cursorTimestamp = (column: SQLWrapper | SQL): SQL<string> =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
