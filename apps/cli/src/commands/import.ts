import type { Command } from 'commander';
import { contextOf, positiveInt } from '../context';
import { EXIT } from '../exit';
import { importOrders, MAX_CHUNK } from '../import/run';
import { table } from '../output';
import type { RunAction } from './tenants';

const SHOWN_REASONS = 20;

export function registerImport(orders: Command, run: RunAction) {
  orders
    .command('import')
    .description(
      'order every line of a CSV file (header line; column domains, space-separated; optional algorithm, ca, ' +
        'tenantId) in bulk requests, with a progress bar; interrupted, the same command resumes without duplicates',
    )
    .argument('<file.csv>', 'the CSV file')
    .option('--tenant <id>', 'the tenant of lines without a tenantId (operator token)')
    .option(
      '--chunk-size <n>',
      `orders per bulk request (at most ${MAX_CHUNK})`,
      positiveInt('--chunk-size', MAX_CHUNK),
      MAX_CHUNK,
    )
    .option('--state <path>', 'where the import records what was accepted (default: <file.csv>.certq-import)')
    .option(
      '--restart',
      'forget an earlier (interrupted or finished) import of this file and send every line again',
    )
    .addHelpText(
      'after',
      '\nPrints a summary of accepted, duplicate (same order as an earlier line) and refused lines with the reasons;\n' +
        'with --json, one object. Exit code 0 when no line was refused, 7 when some were.',
    )
    .action(
      run(
        async (
          file: string,
          options: { tenant?: string; chunkSize: number; state?: string; restart?: boolean },
          command: Command,
        ) => {
          const { client, out, api } = contextOf(command);
          const summary = await importOrders(client, out, api, {
            file,
            tenant: options.tenant,
            chunkSize: options.chunkSize,
            restart: Boolean(options.restart),
            statePath: options.state,
          });
          out.data(summary);
          out.line(
            `${summary.file}: ${summary.lines} line(s): ${summary.accepted} accepted, ${summary.duplicate} duplicate, ` +
              `${summary.refused} refused (${summary.requests} request(s), ${(summary.elapsedMs / 1000).toFixed(1)} s` +
              `${summary.resumed ? ', resumed' : ''})`,
          );
          if (summary.refused) {
            const shown = summary.refusedLines.slice(0, SHOWN_REASONS);
            out.line(
              table(
                ['line', 'refused because'],
                shown.map((r) => [r.line, r.reason]),
              ),
            );
            if (summary.refused > shown.length)
              out.line(`… and ${summary.refused - shown.length} more (--json lists every line)`);
          }
          if (summary.duplicate) {
            const shown = summary.duplicateLines.slice(0, SHOWN_REASONS);
            out.line(
              table(
                ['line', 'same order as line', 'order'],
                shown.map((d) => [d.line, d.duplicateOf, d.orderId]),
              ),
            );
            if (summary.duplicate > shown.length)
              out.line(`… and ${summary.duplicate - shown.length} more (--json lists every line)`);
          }
          return summary.refused ? EXIT.partial : EXIT.ok;
        },
      ),
    );
}
