import { unwrap } from '@certq/sdk';
import type { Command } from 'commander';
import { contextOf } from '../context';
import { shortTime, table } from '../output';

export function registerTenants(program: Command, run: RunAction) {
  const tenants = program.command('tenants').description('tenants and their tokens (operator token)');

  tenants
    .command('create')
    .description('create a tenant; prints its token, which is shown only once')
    .argument('<name>', 'the tenant name')
    .option('--httpsok-key <key>', "the tenant's own httpsok OpenApiKey (default: the operator's)")
    .action(
      run(async (name: string, options: { httpsokKey?: string }, command: Command) => {
        const { client, out } = contextOf(command);
        const tenant = await unwrap(
          client.createTenant({
            body: { name, ...(options.httpsokKey ? { httpsokApiKey: options.httpsokKey } : {}) },
          }),
        );
        out.data(tenant);
        out.line(table(['id', 'name', 'token (shown once)'], [[tenant.id, tenant.name, tenant.token]]));
      }),
    );

  tenants
    .command('list')
    .description('list tenants (no secrets)')
    .action(
      run(async (_options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const { tenants: list } = await unwrap(client.listTenants());
        out.data(list);
        out.line(
          table(
            ['id', 'name', 'status', 'own httpsok key', 'created'],
            list.map((t) => [t.id, t.name, t.status, t.hasOwnApiKey ? 'yes' : 'no', shortTime(t.createdAt)]),
          ),
        );
      }),
    );
  /** What a life-cycle command changed, as one line: `suspended (ordersCancelled 2, certificatesServed 5)`. */
  const summary = (what: string, result: { changed: boolean; affected: Record<string, number> }) =>
    result.changed
      ? `${what} (${Object.entries(result.affected)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')})`
      : `unchanged: it was ${what} already`;

  tenants
    .command('suspend')
    .description(
      'suspend a tenant: its writes are refused and renewals stop; its certificates are still served unless --stop-serving',
    )
    .argument('<id>', 'tenant id')
    .option('--stop-serving', 'also stop serving its certificates until it is resumed')
    .action(
      run(async (id: string, options: { stopServing?: boolean }, command: Command) => {
        const { client, out } = contextOf(command);
        const result = await unwrap(
          client.suspendTenant({
            params: { path: { id } },
            body: options.stopServing ? { stopServing: true } : {},
          }),
        );
        out.data(result);
        out.line(summary('suspended', result));
      }),
    );

  tenants
    .command('resume')
    .description('resume a suspended tenant')
    .argument('<id>', 'tenant id')
    .action(
      run(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const result = await unwrap(client.resumeTenant({ params: { path: { id } } }));
        out.data(result);
        out.line(summary('resumed', result));
      }),
    );

  tenants
    .command('delete')
    .description('delete a tenant for good: every certificate retired, its tokens revoked (audit trail kept)')
    .argument('<id>', 'tenant id')
    .action(
      run(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const result = await unwrap(client.deleteTenant({ params: { path: { id } } }));
        out.data(result);
        out.line(summary('deleted', result));
      }),
    );
}

/** Wraps a command's action: errors become a message on stderr and the matching exit code. */
export type RunAction = <
  // biome-ignore lint/suspicious/noExplicitAny: commander passes positional arguments of any shape
  A extends any[],
>(
  // biome-ignore lint/suspicious/noConfusingVoidType: actions without an exit code of their own return nothing
  action: (...args: A) => Promise<number | void>,
) => (...args: A) => Promise<void>;
