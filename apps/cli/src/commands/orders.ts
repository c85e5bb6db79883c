import { CertqApiError, type CertqClient, type Order, type OrderStatus, unwrap } from '@certq/sdk';
import type { Command } from 'commander';
import { contextOf, parseSince, positiveInt } from '../context';
import { CliError, EXIT, usage } from '../exit';
import type { Output } from '../output';
import { shortTime, table } from '../output';
import type { RunAction } from './tenants';

export const STATUSES: OrderStatus[] = ['verifying', 'applying', 'issuing', 'issued', 'failed', 'cancelled'];
const TERMINAL = new Set<OrderStatus>(['issued', 'failed', 'cancelled']);
const ALGORITHMS = ['ECC', 'RSA'] as const;

const ORDER_HEAD = ['id', 'status', 'kind', 'domains', 'progress', 'attempts', 'last error', 'updated'];

export function orderRows(list: Order[]) {
  return list.map((o) => [
    o.id,
    o.status,
    o.kind,
    o.domains.join(' '),
    `${o.progress}%`,
    o.attempts,
    o.lastError ?? '',
    shortTime(o.updatedAt),
  ]);
}

/** One order: the document in --json mode, a one-row table otherwise. */
function showOrder(out: Output, order: Order): void {
  out.data(order);
  out.line(table(ORDER_HEAD, orderRows([order])));
}

/** Pages through a keyset-paginated list until `max` items or the last page. */
export async function collectPages<T>(
  max: number,
  fetchPage: (
    cursor: string | undefined,
    limit: number,
  ) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor, Math.min(100, max - all.length));
    all.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && all.length < max);
  return all.slice(0, max);
}

function statusOption(value: string): OrderStatus {
  if (!STATUSES.includes(value as OrderStatus))
    throw usage(`--status: one of ${STATUSES.join(', ')}; got ${JSON.stringify(value)}`);
  return value as OrderStatus;
}

function choice<T extends string>(name: string, allowed: readonly T[]) {
  return (value: string): T => {
    if (!allowed.includes(value as T))
      throw usage(`${name}: one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
    return value as T;
  };
}

interface ListFilter {
  status?: OrderStatus;
  domain?: string;
  tenant?: string;
}

async function listOrders(client: CertqClient, filter: ListFilter, max: number): Promise<Order[]> {
  return collectPages(max, async (cursor, limit) => {
    const page = await unwrap(
      client.listOrders({
        params: {
          // Undefined parameters are left out of the query string (openapi-fetch).
          query: { limit, cursor, status: filter.status, domain: filter.domain, tenantId: filter.tenant },
        },
      }),
    );
    return { items: page.orders, nextCursor: page.nextCursor };
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows orders until every one is terminal. On a terminal the table is redrawn in place; elsewhere
 * (a pipe, a log) one line is printed per status change, so the output stays readable.
 */
async function watchOrders(
  client: CertqClient,
  out: Output,
  ids: string[],
  intervalMs: number,
): Promise<Order[]> {
  const redraw = process.stdout.isTTY && !out.json;
  const last = new Map<string, string>();
  for (;;) {
    const orders = await Promise.all(ids.map((id) => unwrap(client.getOrder({ params: { path: { id } } }))));
    const done = orders.filter((o) => TERMINAL.has(o.status)).length;
    const finished = done === orders.length;
    if (redraw) {
      const header = `certq orders watch: ${done}/${orders.length} finished, ${new Date().toISOString().slice(11, 19)}Z${finished ? '' : ' (Ctrl-C to stop)'}`;
      process.stdout.write(`\x1b[H\x1b[J${header}\n${table(ORDER_HEAD, orderRows(orders))}\n`);
    } else if (!out.json) {
      for (const o of orders) {
        const state = `${o.status} ${o.progress}%`;
        if (last.get(o.id) !== state)
          out.line(`${shortTime(o.updatedAt)} ${o.id} ${state}${o.lastError ? ` ${o.lastError}` : ''}`);
        last.set(o.id, state);
      }
    }
    if (finished) return orders;
    await sleep(intervalMs);
  }
}

export function registerOrders(program: Command, run: RunAction) {
  const orders = program.command('orders').description('certificate orders');

  orders
    .command('create')
    .description('order a certificate for one set of domains')
    .argument('<domains...>', 'the domains (a wildcard only as the leftmost label: *.example.com)')
    .option('--tenant <id>', 'the tenant (required with the operator token)')
    .option('--algorithm <alg>', 'ECC or RSA (default ECC)', choice('--algorithm', ALGORITHMS))
    .option('--ca <ca>', 'google, letsencrypt or zerossl (default google)')
    .option('--idempotency-key <key>', 'repeating the command with the same key returns the same order')
    .option('--watch', 'then watch the order until it is issued, failed or cancelled')
    .action(
      run(
        async (
          domains: string[],
          options: {
            tenant?: string;
            algorithm?: 'ECC' | 'RSA';
            ca?: string;
            idempotencyKey?: string;
            watch?: boolean;
          },
          command: Command,
        ) => {
          const { client, out } = contextOf(command);
          const result = client.createOrder({
            body: {
              domains,
              ...(options.tenant ? { tenantId: options.tenant } : {}),
              ...(options.algorithm ? { algorithm: options.algorithm } : {}),
              ...(options.ca ? { ca: options.ca as 'google' } : {}),
            },
            ...(options.idempotencyKey
              ? { params: { header: { 'idempotency-key': options.idempotencyKey } } }
              : {}),
          });
          const status = (await result).response.status;
          const order = await unwrap(result);
          if (options.watch) {
            const [final] = await watchOrders(client, out, [order.id], 2000);
            out.data(final);
            return final!.status === 'issued' ? EXIT.ok : EXIT.partial;
          }
          showOrder(out, order);
          if (status === 200)
            out.note('an active order for this domain set already existed: that one is shown');
        },
      ),
    );

  orders
    .command('get')
    .description('one order, with the DNS records it is waiting for')
    .argument('<id>', 'order id')
    .action(
      run(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const order = await unwrap(client.getOrder({ params: { path: { id } } }));
        showOrder(out, order);
        if (order.dns.length)
          out.line(
            table(
              ['domain', 'record (CNAME)', 'value', 'valid'],
              order.dns.map((d) => [d.domain, d.host, d.hostValue, d.valid ? 'yes' : 'no']),
            ),
          );
      }),
    );

  orders
    .command('list')
    .description('orders, newest first')
    .option('--status <status>', `one of ${STATUSES.join(', ')}`, statusOption)
    .option('--domain <name>', 'orders containing this domain')
    .option('--tenant <id>', 'operator: one tenant')
    .option('--limit <n>', 'at most this many (pages through the API)', positiveInt('--limit'), 50)
    .action(
      run(async (options: ListFilter & { limit: number }, command: Command) => {
        const { client, out } = contextOf(command);
        const list = await listOrders(client, options, options.limit);
        out.data(list);
        out.line(table(ORDER_HEAD, orderRows(list)));
      }),
    );

  orders
    .command('watch')
    .description('redraw a live table of orders until every one is issued, failed or cancelled')
    .argument('[ids...]', 'order ids (default: the active orders in scope)')
    .option('--tenant <id>', 'without ids, operator: the active orders of one tenant')
    .option('--interval <ms>', 'between refreshes', positiveInt('--interval'), 2000)
    .option(
      '--max <n>',
      'without ids: follow at most this many active orders',
      positiveInt('--max', 500),
      100,
    )
    .action(
      run(
        async (
          ids: string[],
          options: { tenant?: string; interval: number; max: number },
          command: Command,
        ) => {
          const { client, out } = contextOf(command);
          let watched = ids;
          if (!watched.length) {
            const active: Order[] = [];
            for (const status of ['verifying', 'applying', 'issuing'] as const)
              active.push(...(await listOrders(client, { status, tenant: options.tenant }, options.max)));
            watched = active.slice(0, options.max).map((o) => o.id);
            if (!watched.length) {
              out.data([]);
              out.line('no active orders');
              return;
            }
          }
          const final = await watchOrders(client, out, watched, options.interval);
          out.data(final);
          return final.every((o) => o.status === 'issued') ? EXIT.ok : EXIT.partial;
        },
      ),
    );

  orders
    .command('retry')
    .description('start failed orders again: the ones given, or every failed order matching the filters')
    .argument('[ids...]', 'order ids (or use --status failed)')
    .option('--status <status>', 'which orders: only failed orders can be retried', statusOption)
    .option('--tenant <id>', 'operator: one tenant')
    .option('--domain <name>', 'orders containing this domain')
    .option('--since <when>', 'failed since: a duration (30m, 2h, 7d) or an ISO-8601 time', (v) =>
      parseSince(v),
    )
    .option('--max <n>', 'retry at most this many', positiveInt('--max'), 10_000)
    .action(
      run(
        async (
          ids: string[],
          options: { status?: OrderStatus; tenant?: string; domain?: string; since?: Date; max: number },
          command: Command,
        ) => {
          const { client, out } = contextOf(command);
          let targets = ids;
          if (!targets.length) {
            if (options.status !== 'failed')
              throw usage(
                'name the orders to retry, or select them with --status failed (only failed orders can be retried)',
              );
            const failed = await listOrders(
              client,
              { status: 'failed', tenant: options.tenant, domain: options.domain },
              Number.MAX_SAFE_INTEGER,
            );
            targets = failed
              .filter((o) => !options.since || new Date(o.updatedAt) >= options.since)
              .slice(0, options.max)
              .map((o) => o.id);
          } else if (options.status && options.status !== 'failed') {
            throw usage('--status: only failed orders can be retried');
          }
          const retried: Order[] = [];
          const refused: { id: string; reason: string }[] = [];
          // A few at a time: quick for thousands, gentle on the API's rate limit.
          let next = 0;
          const workers = Array.from({ length: Math.min(8, targets.length) }, async () => {
            while (next < targets.length) {
              const id = targets[next++]!;
              try {
                retried.push(await unwrap(client.retryOrder({ params: { path: { id } } })));
              } catch (error) {
                if (!(error instanceof CertqApiError) || error.status >= 500 || error.status === 401)
                  throw error;
                refused.push({ id, reason: `${error.code}: ${error.message}` });
              }
            }
          });
          await Promise.all(workers);
          out.data({
            retried: retried.length,
            refused,
            orders: retried.map((o) => ({ id: o.id, status: o.status })),
          });
          out.line(
            `retried ${retried.length} order(s)${refused.length ? `, ${refused.length} refused` : ''}`,
          );
          if (retried.length) out.line(table(ORDER_HEAD, orderRows(retried)));
          if (refused.length)
            out.line(
              table(
                ['id', 'refused because'],
                refused.map((r) => [r.id, r.reason]),
              ),
            );
          if (refused.length && !retried.length && ids.length === 1)
            throw new CliError(refused[0]!.reason, EXIT.refused);
          return refused.length ? EXIT.partial : EXIT.ok;
        },
      ),
    );

  orders
    .command('cancel')
    .description('cancel an active order')
    .argument('<id>', 'order id')
    .action(
      run(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const order = await unwrap(client.cancelOrder({ params: { path: { id } } }));
        showOrder(out, order);
      }),
    );

  return orders;
}
