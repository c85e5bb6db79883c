import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../drizzle', import.meta.url));

/**
 * Applies the committed SQL migrations. Several processes may start at once (API, workers, the
 * migration Job), so the run holds a Postgres advisory lock: one migrates, the others wait and find
 * nothing left to do.
 */
export async function migrate(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString, application_name: 'certq-migrate' });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock(hashtext('certq:migrate'))");
    await drizzleMigrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await client.query("select pg_advisory_unlock(hashtext('certq:migrate'))").catch(() => {});
    await client.end();
  }
}
