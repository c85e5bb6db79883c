import { it } from '@certq/testing';
import { is, SQL } from 'drizzle-orm';
import {
  getTableConfig,
  IndexedColumn,
  isPgEnum,
  type PgColumn,
  PgDialect,
  PgTable,
} from 'drizzle-orm/pg-core';
import pg from 'pg';
import { describe, expect } from 'vitest';
import * as schema from '../src/schema';

// The migrations are written by hand, so nothing but this test keeps them and src/schema.ts saying the
// same thing: both sides are described in one shape and compared whole, each difference named.

interface Described {
  tables: string[];
  enums: Record<string, string[]>;
  /** `table.column` → `type [not null] [default …]` */
  columns: Record<string, string>;
  /** `table.name` → what the constraint or index is over */
  primaryKeys: Record<string, string>;
  uniques: Record<string, string>;
  checks: string[];
  foreignKeys: Record<string, string>;
  indexes: Record<string, string>;
}

const emptyDescription = (): Described => ({
  tables: [],
  enums: {},
  columns: {},
  primaryKeys: {},
  uniques: {},
  checks: [],
  foreignKeys: {},
  indexes: {},
});

const SERIAL_TYPES: Record<string, string> = {
  bigserial: 'bigint',
  serial: 'integer',
  smallserial: 'smallint',
};
const dialect = new PgDialect();

function expectedDefault(column: PgColumn): string | undefined {
  if (column.getSQLType() in SERIAL_TYPES) return 'nextval';
  const value = column.default;
  if (value === undefined) return undefined;
  if (is(value, SQL)) {
    const text = dialect.sqlToQuery(value).sql;
    // `default(sql\`null\`)` only makes a column optional on insert (a trigger fills it): Postgres stores no default.
    return text.toLowerCase() === 'null' ? undefined : text;
  }
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `'${JSON.stringify(value)}'`;
}

function describeColumn(type: string, notNull: boolean, byDefault: string | undefined): string {
  return [type, notNull ? 'not null' : '', byDefault === undefined ? '' : `default ${byDefault}`]
    .filter(Boolean)
    .join(' ');
}

function fromSchema(): Described {
  const described = emptyDescription();
  for (const value of Object.values(schema)) {
    if (isPgEnum(value)) described.enums[value.enumName] = [...value.enumValues];
    if (!is(value, PgTable)) continue;
    const table = getTableConfig(value);
    described.tables.push(table.name);
    for (const column of table.columns) {
      const type = column.getSQLType();
      described.columns[`${table.name}.${column.name}`] = describeColumn(
        SERIAL_TYPES[type] ?? type,
        column.notNull,
        expectedDefault(column),
      );
      if (column.primary) described.primaryKeys[table.name] = column.name;
      if (column.isUnique) described.uniques[`${table.name}.${column.uniqueName}`] = column.name;
    }
    for (const key of table.primaryKeys)
      described.primaryKeys[table.name] = key.columns.map((c) => c.name).join(', ');
    for (const unique of table.uniqueConstraints)
      described.uniques[`${table.name}.${unique.getName()}`] = unique.columns.map((c) => c.name).join(', ');
    for (const check of table.checks) described.checks.push(`${table.name}.${check.name}`);
    for (const key of table.foreignKeys) {
      const reference = key.reference();
      described.foreignKeys[`${table.name}.${key.getName()}`] =
        `(${reference.columns.map((c) => c.name).join(', ')}) → ` +
        `${getTableConfig(reference.foreignTable).name}(${reference.foreignColumns.map((c) => c.name).join(', ')})` +
        ` on delete ${key.onDelete ?? 'no action'}`;
    }
    for (const { config } of table.indexes) {
      const columns = config.columns.map((column) => {
        if (!is(column, IndexedColumn)) return 'expression';
        const desc = column.indexConfig.order === 'desc';
        const nullsFirst = column.indexConfig.nulls ? column.indexConfig.nulls === 'first' : desc;
        return [
          column.name,
          desc ? 'desc' : '',
          nullsFirst ? 'nulls first' : '',
          column.indexConfig.opClass ?? '',
        ]
          .filter(Boolean)
          .join(' ');
      });
      described.indexes[`${table.name}.${config.name}`] =
        `${config.unique ? 'unique ' : ''}${config.method ?? 'btree'} (${columns.join(', ')})${config.where ? ' partial' : ''}`;
    }
  }
  return described;
}

/** Postgres's rendering of a default, casts dropped: `'[]'::jsonb` → `'[]'`, `nextval('…'::regclass)` → `nextval`. */
function normalizedDefault(expression: string | null): string | undefined {
  if (expression === null) return undefined;
  if (expression.startsWith('nextval(')) return 'nextval';
  return expression.replace(/::[\w ]+(\[\])?$/, '');
}

const DELETE_ACTIONS: Record<string, string> = {
  a: 'no action',
  r: 'restrict',
  c: 'cascade',
  n: 'set null',
  d: 'set default',
};

async function fromDatabase(url: string): Promise<Described> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const query = async <Row>(text: string) => (await client.query(text)).rows as Row[];
    const described = emptyDescription();
    const tables = await query<{ name: string }>(
      `select relname as name from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'`,
    );
    described.tables = tables.map((t) => t.name);
    for (const row of await query<{ name: string; labels: string[] }>(
      `select t.typname as name, array_agg(e.enumlabel::text order by e.enumsortorder) as labels
         from pg_type t join pg_enum e on e.enumtypid = t.oid
        where t.typnamespace = 'public'::regnamespace group by t.typname`,
    ))
      described.enums[row.name] = row.labels;
    for (const row of await query<{
      table: string;
      name: string;
      type: string;
      notnull: boolean;
      default: string | null;
    }>(
      `select c.relname as table, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
              a.attnotnull as notnull, pg_get_expr(d.adbin, d.adrelid) as default
         from pg_attribute a
         join pg_class c on c.oid = a.attrelid
         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped`,
    ))
      described.columns[`${row.table}.${row.name}`] = describeColumn(
        row.type,
        row.notnull,
        normalizedDefault(row.default),
      );
    for (const row of await query<{
      table: string;
      name: string;
      type: string;
      columns: string[];
      foreign_table: string | null;
      foreign_columns: string[] | null;
      on_delete: string;
    }>(
      `select c.relname as table, k.conname as name, k.contype as type,
              array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i)
                      join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i) as columns,
              f.relname as foreign_table,
              array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i)
                      join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) as foreign_columns,
              k.confdeltype as on_delete
         from pg_constraint k
         join pg_class c on c.oid = k.conrelid
         left join pg_class f on f.oid = k.confrelid
        where k.connamespace = 'public'::regnamespace and k.contype in ('p', 'u', 'c', 'f')`,
    )) {
      const key = `${row.table}.${row.name}`;
      if (row.type === 'p') described.primaryKeys[row.table] = row.columns.join(', ');
      if (row.type === 'u') described.uniques[key] = row.columns.join(', ');
      if (row.type === 'c') described.checks.push(key);
      if (row.type === 'f')
        described.foreignKeys[key] =
          `(${row.columns.join(', ')}) → ${row.foreign_table}(${row.foreign_columns!.join(', ')}) on delete ${DELETE_ACTIONS[row.on_delete]}`;
    }
    // Indexes of their own: those behind a primary key or unique constraint are compared as constraints.
    for (const row of await query<{
      table: string;
      name: string;
      unique: boolean;
      method: string;
      partial: boolean;
      columns: string[];
    }>(
      `select t.relname as table, i.relname as name, x.indisunique as unique, am.amname as method,
              x.indpred is not null as partial,
              array(select concat_ws(' ', coalesce(a.attname::text, 'expression'),
                                     case when x.indoption[u.i - 1] & 1 = 1 then 'desc' end,
                                     case when (x.indoption[u.i - 1] & 2 = 2) then 'nulls first' end,
                                     case when not o.opcdefault then o.opcname::text end)
                      from unnest(x.indkey) with ordinality u(n, i)
                      left join pg_attribute a on a.attrelid = x.indrelid and a.attnum = u.n
                      join pg_opclass o on o.oid = x.indclass[u.i - 1]
                     order by u.i) as columns
         from pg_index x
         join pg_class i on i.oid = x.indexrelid
         join pg_class t on t.oid = x.indrelid
         join pg_am am on am.oid = i.relam
        where t.relnamespace = 'public'::regnamespace
          and not exists (select 1 from pg_constraint k where k.conindid = x.indexrelid and k.contype in ('p', 'u'))`,
    ))
      described.indexes[`${row.table}.${row.name}`] =
        `${row.unique ? 'unique ' : ''}${row.method} (${row.columns.join(', ')})${row.partial ? ' partial' : ''}`;
    return described;
  } finally {
    await client.end();
  }
}

function sorted(described: Described): Described {
  const byKey = (record: Record<string, string>) => Object.fromEntries(Object.entries(record).sort());
  return {
    tables: [...described.tables].sort(),
    enums: Object.fromEntries(Object.entries(described.enums).sort()),
    columns: byKey(described.columns),
    primaryKeys: byKey(described.primaryKeys),
    uniques: byKey(described.uniques),
    checks: [...described.checks].sort(),
    foreignKeys: byKey(described.foreignKeys),
    indexes: byKey(described.indexes),
  };
}

describe('the hand-written migrations', () => {
  it('build the database src/schema.ts describes, no more and no less', async ({ database }) => {
    const migrated = sorted(await fromDatabase(database.url));
    const declared = sorted(fromSchema());
    for (const part of Object.keys(declared) as (keyof Described)[])
      expect
        .soft(migrated[part], `${part}: migrated database (left) vs src/schema.ts (right)`)
        .toEqual(declared[part]);
  });
});
