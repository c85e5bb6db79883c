import { type RenewalBatch, unwrap } from '@certq/sdk';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { contextOf, nonNegativeInt, positiveInt } from '../context';
import { EXIT } from '../exit';
import { table } from '../output';
import type { RunAction } from './tenants';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function registerRenew(program: Command, run: RunAction) {
  program
    .command('renew')
    .description('renew matching certificates now, showing the batch progress until every renewal ended')
    .option('--tenant <id...>', 'only these tenants (a tenant token: its own)')
    .option(
      '--expiring-within <days>',
      'certificates whose notAfter is within this many days',
      nonNegativeInt('--expiring-within', 3650),
    )
    .option('--domain <name...>', 'certificates containing any of these domains')
    .option('--no-wait', 'print the batch id and return at once')
    .option('--interval <ms>', 'between progress checks', positiveInt('--interval'), 1000)
    .action(
      run(
        async (
          options: {
            tenant?: string[];
            expiringWithin?: number;
            domain?: string[];
            wait: boolean;
            interval: number;
          },
          command: Command,
        ) => {
          const { client, out } = contextOf(command);
          const accepted = await unwrap(
            client.requestRenewals({
              body: {
                ...(options.tenant ? { tenantIds: options.tenant } : {}),
                ...(options.expiringWithin !== undefined
                  ? { expiringWithinDays: options.expiringWithin }
                  : {}),
                ...(options.domain ? { domains: options.domain } : {}),
              },
            }),
          );
          out.note(
            `batch ${accepted.batchId}: ${accepted.enqueued} renewal(s) queued, ${accepted.skipped} skipped (already active)`,
          );
          let batch: RenewalBatch = await unwrap(
            client.getRenewalBatch({ params: { path: { id: accepted.batchId } } }),
          );
          if (options.wait && batch.inFlight > 0) {
            const bar = new SingleBar({
              format:
                'renewing [{bar}] {value}/{total} ended | {issued} issued, {failed} failed, {inFlight} in flight',
              stream: process.stderr,
              hideCursor: true,
            });
            bar.start(batch.total, 0, batch);
            try {
              while (batch.inFlight > 0) {
                await sleep(options.interval);
                batch = await unwrap(client.getRenewalBatch({ params: { path: { id: accepted.batchId } } }));
                bar.update(batch.total - batch.inFlight, batch);
              }
            } finally {
              bar.stop();
            }
          }
          const result = { ...batch, enqueued: accepted.enqueued, skipped: accepted.skipped };
          out.data(result);
          out.line(
            table(
              ['batch', 'renewals', 'issued', 'failed', 'cancelled', 'in flight', 'skipped'],
              [
                [
                  batch.batchId,
                  batch.total,
                  batch.issued,
                  batch.failed,
                  batch.cancelled,
                  batch.inFlight,
                  accepted.skipped,
                ],
              ],
            ),
          );
          return batch.failed + batch.cancelled > 0 ? EXIT.partial : EXIT.ok;
        },
      ),
    );
}
