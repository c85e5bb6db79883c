import { createHash } from 'node:crypto';
import { type Column, fillPlaceholders, getTableColumns, is, SQL, sql } from 'drizzle-orm';
import { PgDialect, type PgTable, type PgUpdateSetSource } from 'drizzle-orm/pg-core';
import pg from 'pg';
import type { Queryable } from './client';
import { type Order, orders } from './schema';

/*
 * The workflow's hot statements (an order's transitions, with what rides in them, and the worker's claims)
 * written as text instead of through drizzle's query builder. The builder walks its object graph at
 * every execution — each chunk of every column list through `is()` entity checks — which cost the worker
 * more CPU per order than everything else it does in JavaScript (bench/worker.bench.ts). Here the text is
 * concatenated from column names looked up once per table; values still go through each column's own
 * driver mapping and rows come back through the columns' mapping, so what is sent and returned is what
 * drizzle would send and return. Conditions and SQL values stay drizzle fragments, each rendered once
 * (see `sql`), and the statements go by name (see `nameOf`).
 */

const dialect = new PgDialect();
const pgTypes = pg.types;
const renderedFragments = new WeakMap<SQL, { texts: string[]; params: unknown[] }>();

/** A statement being written: text with `$n` placeholders and its values, in order. */
export class StatementText {
  private readonly parts: string[] = [''];
  private readonly values: unknown[] = [];

  raw(text: string): this {
    this.parts[this.parts.length - 1] += text;
    return this;
  }

  /** A value as sent already (mapped for the driver). */
  value(value: unknown): this {
    this.values.push(value);
    this.parts.push('');
    return this;
  }

  /**
   * A drizzle fragment (its params join this statement's, in order). A fragment is rendered once and
   * remembered by identity, so one built once — a module constant, with `sql.placeholder(name)` where
   * each use differs — costs no rendering at later uses; `values` fill its placeholders (as the driver
   * takes them: a placeholder is not mapped through a column).
   */
  sql(fragment: SQL, values: Record<string, unknown> = {}): this {
    let rendered = renderedFragments.get(fragment);
    if (!rendered) {
      const query = dialect.sqlToQuery(fragment);
      // drizzle numbers a fragment's params $1… in the order they appear.
      rendered = { texts: query.sql.split(/\$\d+/), params: query.params };
      renderedFragments.set(fragment, rendered);
    }
    const params = fillPlaceholders(rendered.params, values);
    this.raw(rendered.texts[0]!);
    for (const [i, param] of params.entries()) this.value(param).raw(rendered.texts[i + 1]!);
    return this;
  }

  /**
   * Runs it on the pg pool or client under `db` (drizzle keeps it on its session; its own execute would
   * build a prepared-query object and type-parser closures per call). Rows come as arrays, in the order
   * of the selected columns, with the values drizzle's own session would hand its columns (DRIVER_TYPES).
   */
  async run(db: Queryable, options: { named?: boolean } = {}): Promise<unknown[][]> {
    let text = this.parts[0]!;
    for (let i = 1; i < this.parts.length; i++) text += `$${i}${this.parts[i]}`;
    const { rows } = await (db as unknown as DrizzleOnPg).session.client.query<unknown[]>({
      name: options.named === false ? undefined : nameOf(text),
      text,
      values: this.values,
      rowMode: 'array',
      types: DRIVER_TYPES,
    });
    return rows;
  }
}

/**
 * The types drizzle's node-postgres session leaves as text, because its columns parse them
 * (mapFromDriverValue): timestamps, dates and intervals, their arrays and numeric[]. Everything else is
 * parsed by pg as usual. One object for every statement (drizzle builds these closures per query).
 */
const DRIVER_TEXT_TYPES = new Set([
  pgTypes.builtins.TIMESTAMPTZ,
  pgTypes.builtins.TIMESTAMP,
  pgTypes.builtins.DATE,
  pgTypes.builtins.INTERVAL,
  1231, // numeric[]
  1115, // timestamp[]
  1185, // timestamptz[]
  1187, // interval[]
  1182, // date[]
]);
const asText = (value: string) => value;
const DRIVER_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    DRIVER_TEXT_TYPES.has(oid) ? asText : pgTypes.getTypeParser(oid, format)) as typeof pgTypes.getTypeParser,
};

/**
 * These statements go by name (unless run with `named: false`): Postgres parses each text once per
 * connection instead of at every execution (createDb strips names where prepared statements cannot be used, PgBouncer before 1.21).
 * They all find their rows by key, so the generic plan Postgres may settle on after five executions is
 * the plan a custom one would be — unlike statements whose best plan depends on the data (bulk inserts,
 * scans, listings), which stay unnamed: named, the renewal scan took 36 s instead of 21 s at a million
 * certificates. Their texts come from code paths, a bounded set; past MAX_NAMED they go unnamed anyway.
 */
const names = new Map<string, string>();
const MAX_NAMED = 1000;
function nameOf(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED) {
    // The text decides the name: pg refuses one name for two texts on a connection.
    name = `certq_${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
    names.set(text, name);
  }
  return name;
}

/** What drizzle's node-postgres database and transaction hold: the pool, or the transaction's client. */
interface DrizzleOnPg {
  session: { client: Pick<pg.Pool, 'query'> };
}

interface TableText {
  name: string;
  columns: Readonly<Record<string, Column>>;
  keys: string[];
}
const tables = new WeakMap<PgTable, TableText>();

function tableText(table: PgTable): TableText {
  let known = tables.get(table);
  if (!known) {
    const columns = getTableColumns(table);
    known = { name: dialect.sqlToQuery(sql`${table}`).sql, columns, keys: Object.keys(columns) };
    tables.set(table, known);
  }
  return known;
}

/** `"<from>"."<column>"` for every column, in the table's order: a row of it maps back with `rowOf`. */
export function columnsOf(table: PgTable, from: string): string {
  const { columns, keys } = tableText(table);
  return keys.map((key) => `"${from}"."${columns[key]!.name}"`).join(', ');
}

/** The columns selected with `columnsOf`, from `at` in an array row, as drizzle maps them. */
export function rowOf<Row>(table: PgTable, raw: readonly unknown[], at = 0): Row {
  const { columns, keys } = tableText(table);
  const row: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const value = raw[at + i];
    row[keys[i]!] =
      value === null || value === undefined ? null : columns[keys[i]!]!.mapFromDriverValue(value);
  }
  return row as Row;
}

/** How many columns `columnsOf(table)` selects (what follows them in a row starts there). */
export const columnCount = (table: PgTable) => tableText(table).keys.length;

function driverValue(column: Column, value: unknown): unknown {
  return value === null ? null : column.mapToDriverValue(value);
}

/**
 * `"column" = value, …` from a drizzle-style set object (undefined values left out, as drizzle does;
 * SQL values written inline).
 */
export function writeSet(
  statement: StatementText,
  table: PgTable,
  set: Record<string, unknown>,
): StatementText {
  const { columns } = tableText(table);
  let first = true;
  for (const [key, value] of Object.entries(set)) {
    if (value === undefined) continue;
    const column = columns[key];
    if (!column) throw new Error(`no column ${key}`);
    statement.raw(`${first ? '' : ', '}"${column.name}" = `);
    first = false;
    if (is(value, SQL)) statement.sql(value);
    else statement.value(driverValue(column, value));
  }
  if (first) throw new Error('nothing to set');
  return statement;
}

/**
 * `update orders set … where … returning` every column: the orders the condition matched, as they are
 * now. The worker's claims (one statement, no row lock) go through this.
 */
export async function updateOrders(
  db: Queryable,
  set: PgUpdateSetSource<typeof orders>,
  where: SQL,
  /** The values of `where`'s placeholders. */
  values?: Record<string, unknown>,
): Promise<Order[]> {
  const statement = writeSet(new StatementText().raw('update "orders" set '), orders, set)
    .raw(' where ')
    .sql(where, values)
    .raw(` returning ${ORDERS_RETURNED}`);
  return (await statement.run(db)).map((row) => rowOf<Order>(orders, row));
}
const ORDERS_RETURNED = columnsOf(orders, 'orders');
