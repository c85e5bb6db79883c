import { hashToken } from '@certq/core';
import { Queue } from 'bullmq';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inTransaction } from './transaction';

/**
 * The fair anchor of `POST /v1/orders`: a Fastify route doing what accepting an order needs at the
 * least — a token lookup, one Postgres transaction (the order and its event), one BullMQ add — on the
 * same Postgres and Redis. No validation beyond JSON, no rate limit, no idempotency, no error shape.
 */
export async function buildMinimalEnqueue(options: {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
}): Promise<FastifyInstance> {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('minimal-verify', { connection, prefix: options.prefix });
  const app = Fastify({ logger: false });
  app.post<{ Body: { domains: string[] } }>('/v1/orders', async (request, reply) => {
    const token = (request.headers.authorization ?? '').replace(/^Bearer /, '');
    const tenant = await pool.query<{ id: string }>('select id from tenants where token_hash = $1', [
      hashToken(token),
    ]);
    const tenantId = tenant.rows[0]?.id;
    if (!tenantId) return reply.code(401).send({ error: 'unauthorized' });
    const domains = request.body.domains;
    const id = await inTransaction(pool, async (c) => {
      const inserted = await c.query<{ id: string }>(
        'insert into orders (tenant_id, domains, domains_key) values ($1, $2, $3) returning id',
        [tenantId, domains, [...domains].sort().join(',')],
      );
      const orderId = inserted.rows[0]!.id;
      await c.query(
        `insert into order_events (order_id, type, to_status) values ($1, 'created', 'verifying')`,
        [orderId],
      );
      return orderId;
    });
    await queue.add('verify', { orderId: id }, { jobId: id, removeOnComplete: true });
    return reply.code(202).send({ id, status: 'verifying' });
  });
  app.addHook('onClose', async () => {
    await queue.close();
    connection.disconnect();
    await pool.end();
  });
  return app;
}
