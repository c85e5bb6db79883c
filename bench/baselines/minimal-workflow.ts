import { randomBytes } from 'node:crypto';
import { HttpsokClient } from '@certq/api-client';
import { createSecretBox } from '@certq/core';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inTransaction } from './transaction';

/**
 * The fair anchor of the worker benchmark: the same three stages on the same parts, written as
 * simply as they can be — per stage one upstream call (dv, apply, get) and one Postgres transaction
 * (update the order, insert an event), the certificate stored at the end, BullMQ on the same Redis,
 * the same simulator and Postgres. No locks, no claims, no checks, no retries, no reconciler: what
 * certq's guarantees are measured against.
 */
export interface MinimalWorkflowOptions {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  simulatorUrl: string;
  orders: number;
  concurrency: number;
  /**
   * Called once the orders and their first jobs are in place, just before the workers start: the bench
   * reads its counters here, so both sides are counted from the same point (certq's orders are queued
   * before its worker starts too).
   */
  beforeStart?: () => Promise<void>;
  /** Called once every order is issued, before anything is closed (its connections still open). */
  afterDone?: () => Promise<void>;
}

export interface MinimalWorkflowResult {
  seconds: number;
  cpuSeconds: number;
  issued: number;
}

type StageData = { id: string; domains: string[]; applyId?: string };

export async function runMinimalWorkflow(options: MinimalWorkflowOptions): Promise<MinimalWorkflowResult> {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const client = new HttpsokClient({ apiKey: 'bench', baseUrl: options.simulatorUrl });
  const box = createSecretBox(randomBytes(32));
  const names = ['minimal-verify', 'minimal-apply', 'minimal-poll'] as const;
  const queues = names.map(
    (n) =>
      new Queue<StageData>(n, {
        connection,
        prefix: options.prefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
      }),
  );
  const {
    rows: [tenant],
  } = await pool.query<{ id: string }>(
    `insert into tenants (name, token_hash) values ('minimal', 'minimal') returning id`,
  );
  const ids: { id: string; domains: string[] }[] = [];
  for (let i = 0; i < options.orders; i += 1000) {
    const n = Math.min(1000, options.orders - i);
    const { rows } = await pool.query<{ id: string; domains: string[] }>(
      `insert into orders (tenant_id, domains, domains_key)
       select $1, array['m' || g || '.bench.example.com'], 'm' || g || '.bench.example.com'
       from generate_series($2::int, $3::int) g returning id, domains`,
      [tenant!.id, i, i + n - 1],
    );
    ids.push(...rows);
  }
  for (let i = 0; i < ids.length; i += 1000) {
    await queues[0]!.addBulk(
      ids.slice(i, i + 1000).map((o) => ({ name: 'verify', data: o, opts: { jobId: `v-${o.id}` } })),
    );
  }

  /** One transaction: the order's new status, one event row (and, at the end, the certificate). */
  async function advance(
    id: string,
    from: string,
    to: string,
    set: string,
    params: unknown[],
    before?: (c: pg.PoolClient) => Promise<void>,
  ) {
    await inTransaction(pool, async (c) => {
      if (before) await before(c);
      await c.query(`update orders set status = $2, updated_at = now()${set} where id = $1`, [
        id,
        to,
        ...params,
      ]);
      await c.query(
        'insert into order_events (order_id, type, from_status, to_status) values ($1, $2, $3, $4)',
        [id, 'transition', from, to],
      );
    });
  }

  let issued = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const handlers: ((job: Job<StageData>) => Promise<void>)[] = [
    async (job) => {
      const result = await client.verify(job.data.domains);
      if (!result.valid) throw new Error('not valid');
      await advance(job.data.id, 'verifying', 'applying', '', []);
      await queues[1]!.add('apply', job.data, { jobId: `a-${job.data.id}` });
    },
    async (job) => {
      const { applyId } = await client.apply({
        domainList: job.data.domains,
        algorithm: 'ECC',
        ca: 'google',
      });
      await advance(job.data.id, 'applying', 'issuing', ', apply_id = $3', [applyId]);
      await queues[2]!.add('poll', { ...job.data, applyId }, { jobId: `p-${job.data.id}` });
    },
    async (job) => {
      const application = await client.getApply(job.data.applyId!);
      if (application.status !== 'issued') throw new Error(`not issued: ${application.status}`);
      await advance(job.data.id, 'issuing', 'issued', '', [], async (c) => {
        await c.query(
          `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
             not_before, not_after, fingerprint, certificate_pem, private_key_sealed)
           select tenant_id, id, domains, domains_key, $2, algorithm, ca, $3, $4, $5, $6, $7 from orders where id = $1`,
          [
            job.data.id,
            job.data.applyId,
            application.notBefore,
            application.notAfter,
            application.fingerprints ?? 'none',
            application.certificate,
            box.seal(application.privateKey),
          ],
        );
      });
      if (++issued === options.orders) resolveDone();
    },
  ];
  await options.beforeStart?.();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const workers = names.map(
    (name, i) =>
      new Worker<StageData>(name, handlers[i]!, {
        connection,
        prefix: options.prefix,
        concurrency: options.concurrency,
      }),
  );
  await done;
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await options.afterDone?.();
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(queues.map((q) => q.close()));
  await client.close();
  connection.disconnect();
  await pool.end();
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, issued };
}
