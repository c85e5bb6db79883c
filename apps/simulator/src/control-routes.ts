import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CertificateAuthority } from './ca';
import { firstIssue } from './http';
import type { SimState } from './state';

/** The control API under `/_sim` (root CA, DNS records for `records` mode, reset, stats) and `/healthz`. */

const dnsBody = z.object({ name: z.string().min(1), value: z.string() }, 'body must be a JSON object');

export function registerControlRoutes(
  app: FastifyInstance,
  ctx: { state: SimState; caReady: Promise<CertificateAuthority>; reset(): void },
): void {
  const { state, caReady } = ctx;

  app.get('/_sim/ca', async (_req, reply) => {
    const authority = await caReady;
    return reply.type('text/plain; charset=utf-8').send(authority.rootPem);
  });

  app.put('/_sim/dns', async (req, reply) => {
    const parsed = dnsBody.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ error: firstIssue(parsed.error) });
    state.setDns(parsed.data.name, parsed.data.value);
    return reply.code(204).send();
  });

  app.post('/_sim/reset', async (_req, reply) => {
    ctx.reset();
    return reply.code(204).send();
  });

  app.get('/_sim/stats', async () => state.stats());

  app.get('/healthz', async () => ({ status: 'ok' }));
}
