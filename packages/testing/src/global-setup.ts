import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_FOLDER, migrate } from '@certq/db';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startNamed } from './named';
import { ensurePostgres, ensureRedis } from './services';

export interface ProvidedServices {
  pgAdminUrl: string;
  templateDatabase: string;
  redisUrl: string;
  /**
   * `127.0.0.1:<port>` of a private, empty authoritative `named` (root zone): the `DNS_RESOLVERS` of every test,
   * so certq's own DNS checks answer locally (NXDOMAIN, no CAA) and never reach the machine's resolver.
   * Tests that need records start their own with `startNamed()`.
   */
  dnsResolvers: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    certq: ProvidedServices;
  }
}

/** Name of the migrated template: changes whenever a migration file does, so stale templates are never used. */
function templateName(): string {
  const hash = createHash('sha256');
  for (const file of readdirSync(MIGRATIONS_FOLDER, { recursive: true }).map(String).sort()) {
    if (file.endsWith('.sql') || file.endsWith('.json'))
      hash.update(file).update(readFileSync(join(MIGRATIONS_FOLDER, file)));
  }
  return `certq_tpl_${hash.digest('hex').slice(0, 12)}`;
}

export function withDatabase(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function ensureTemplate(adminUrl: string): Promise<string> {
  const name = templateName();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Several suites (or developers' runs) may start at once: one builds the template, others wait.
    await admin.query("select pg_advisory_lock(hashtext('certq:test-template'))");
    const exists = await admin.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) {
      const building = `${name}_building`;
      await admin.query(`drop database if exists ${building}`);
      await admin.query(`create database ${building}`);
      await migrate(withDatabase(adminUrl, building));
      await admin.query(`alter database ${building} rename to ${name}`);
    }
    await admin.query("select pg_advisory_unlock(hashtext('certq:test-template'))");
  } finally {
    await admin.end();
  }
  return name;
}

export default async function setup(project: TestProject) {
  const postgres = await ensurePostgres(process.env.CERTQ_TEST_DATABASE_URL);
  const redis = await ensureRedis(process.env.CERTQ_TEST_REDIS_URL);
  const templateDatabase = await ensureTemplate(postgres.url);
  const named = await startNamed();
  // Inherited by the test workers and every process they spawn with process.env.
  process.env.DNS_RESOLVERS = named.address;
  project.provide('certq', {
    pgAdminUrl: postgres.url,
    templateDatabase,
    redisUrl: redis.url,
    dnsResolvers: named.address,
  });
  return async () => {
    await named.stop();
    await redis.stop();
    await postgres.stop();
  };
}
