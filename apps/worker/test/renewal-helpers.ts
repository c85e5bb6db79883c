import { randomBytes, randomUUID } from 'node:crypto';
import { domainSetKey, renewalTime, secretBoxFromConfig } from '@certq/core';
import { certificates, type Database, orders, tenants } from '@certq/db';
import { pino } from 'pino';
import {
  createWorkerContext,
  type StartWorkerOptions,
  startWorker,
  type WorkerContext,
  type WorkerHandle,
} from '../src';
import type { Workbench } from './helpers';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

export interface SeedCertificate {
  tenantId: string;
  domains: string[];
  notAfter: Date;
  /** Default: 90 days before notAfter. */
  notBefore?: Date;
  /** Default: the start of its renewal window (renewalTime without the spread). */
  renewAt?: Date;
  algorithm?: 'ECC' | 'RSA';
  ca?: 'google' | 'letsencrypt' | 'zerossl';
}

/**
 * Current certificates inserted directly (each with the issued order it came from), for tests that
 * need many or need a given expiry. The PEM and key are placeholders: nothing reads them here.
 */
export async function seedCertificates(db: Database, list: readonly SeedCertificate[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < list.length; i += 1000) {
    const chunk = list.slice(i, i + 1000).map((c) => {
      const notBefore = c.notBefore ?? new Date(c.notAfter.getTime() - 90 * DAY_MS);
      const renewAt = c.renewAt ?? renewalTime({ notBefore, notAfter: c.notAfter }, { random: () => 0 });
      return { ...c, notBefore, renewAt, orderId: randomUUID(), id: randomUUID() };
    });
    await db.insert(orders).values(
      chunk.map((c) => ({
        id: c.orderId,
        tenantId: c.tenantId,
        domains: c.domains,
        domainsKey: domainSetKey(c.domains),
        algorithm: c.algorithm ?? 'ECC',
        ca: c.ca ?? 'google',
        status: 'issued' as const,
        applyId: `seed-${c.orderId}`,
        progress: 100,
        certificateId: c.id,
      })),
    );
    await db.insert(certificates).values(
      chunk.map((c) => ({
        id: c.id,
        tenantId: c.tenantId,
        orderId: c.orderId,
        domains: c.domains,
        domainsKey: domainSetKey(c.domains),
        applyId: `seed-${c.orderId}`,
        algorithm: c.algorithm ?? 'ECC',
        ca: c.ca ?? 'google',
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        renewAt: c.renewAt,
        fingerprint: randomBytes(32).toString('hex'),
        certificatePem: '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n',
        privateKeySealed: 'placeholder',
      })),
    );
    ids.push(...chunk.map((c) => c.id));
  }
  return ids;
}

export async function createTenant(db: Database, name = `tenant-${randomBytes(4).toString('hex')}`) {
  const [tenant] = await db
    .insert(tenants)
    .values({ name, tokenHash: randomBytes(32).toString('hex') })
    .returning();
  return tenant!;
}

/**
 * The workbench's worker with options the workbench does not pass: the renewal scan scheduler is off
 * unless asked for (tests scan by hand), webhook retries can be shortened.
 */
export async function startRenewalWorker(
  bench: Workbench,
  options: Partial<Pick<StartWorkerOptions, 'scheduleRenewalScan' | 'webhooks'>> = {},
): Promise<WorkerHandle> {
  bench.worker = await startWorker({
    config: bench.config,
    clock: bench.clock,
    logger: pino({ level: process.env.CERTQ_TEST_LOG ?? 'silent' }),
    lockDurationMs: 5000,
    stalledIntervalMs: 1000,
    scheduleRenewalScan: options.scheduleRenewalScan ?? false,
    webhooks: options.webhooks,
  });
  return bench.worker;
}

export const unique = (label: string) => `${label}-${randomBytes(4).toString('hex')}`;

/** A workflow context on the workbench's database and queues, with no worker taking the jobs. */
export function scanContext(bench: Workbench): WorkerContext {
  return createWorkerContext({
    db: bench.db.db,
    queues: bench.queues,
    secrets: secretBoxFromConfig(bench.config),
    config: bench.config,
    redis: bench.redisClient,
    clock: bench.clock,
    logger: pino({ level: 'silent' }),
  });
}
