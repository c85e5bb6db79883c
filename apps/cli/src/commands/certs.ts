import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Certificate, unwrap } from '@certq/sdk';
import type { Command } from 'commander';
import { contextOf, nonNegativeInt, positiveInt } from '../context';
import { shortTime, table } from '../output';
import { collectPages } from './orders';
import type { RunAction } from './tenants';

const DAY_MS = 86_400_000;

function daysLeft(notAfter: string, now = Date.now()): number {
  return Math.floor((new Date(notAfter).getTime() - now) / DAY_MS);
}

export function certificateRows(list: Certificate[]) {
  return list.map((c) => [
    c.id,
    c.domains.join(' '),
    shortTime(c.notAfter),
    daysLeft(c.notAfter),
    c.ca ?? 'uploaded',
    c.status,
  ]);
}

const CERT_HEAD = ['id', 'domains', 'not after', 'days left', 'ca', 'status'];

const STATUSES = ['active', 'renewing', 'moved', 'retired', 'expired', 'uploaded'] as const;

/** Written next to each other and renamed into place, so a reader never sees half a file. */
async function writeAtomically(path: string, content: string, mode: number) {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode });
  await chmod(temporary, mode);
  await rename(temporary, path);
}

export function registerCerts(program: Command, run: RunAction) {
  const certs = program.command('certs').description('issued certificates');

  certs
    .command('list')
    .description('certificate metadata, newest first')
    .option('--domain <name>', 'certificates covering this domain')
    .option(
      '--expiring-within <days>',
      'notAfter within this many days',
      nonNegativeInt('--expiring-within', 3650),
    )
    .option('--tenant <id>', 'operator: one tenant')
    .option('--history', 'include retired certificates and those replaced by a renewal')
    .option('--status <status>', `only this status: ${STATUSES.join(', ')}`)
    .option('--limit <n>', 'at most this many (pages through the API)', positiveInt('--limit'), 100)
    .action(
      run(
        async (
          options: {
            domain?: string;
            expiringWithin?: number;
            tenant?: string;
            history?: boolean;
            status?: string;
            limit: number;
          },
          command: Command,
        ) => {
          const { client, out } = contextOf(command);
          const status = options.status as (typeof STATUSES)[number] | undefined;
          const list = await collectPages(options.limit, async (cursor, limit) => {
            const page = await unwrap(
              client.listCertificates({
                params: {
                  // Undefined parameters are left out of the query string (openapi-fetch).
                  query: {
                    limit,
                    cursor,
                    domain: options.domain,
                    expiringWithinDays: options.expiringWithin,
                    tenantId: options.tenant,
                    includeHistory: options.history ? 'true' : undefined,
                    status,
                  },
                },
              }),
            );
            return { items: page.certificates, nextCursor: page.nextCursor };
          });
          out.data(list);
          out.line(table(CERT_HEAD, certificateRows(list)));
        },
      ),
    );

  certs
    .command('get')
    .description(
      'one certificate; with --out, write its PEM chain (and with --key its private key) to a directory',
    )
    .argument('<id>', 'certificate id')
    .option('--out <dir>', 'write fullchain.pem (leaf then intermediates) into this directory')
    .option('--key', 'with --out: also write privkey.pem (mode 0600); the key read is audited')
    .action(
      run(async (id: string, options: { out?: string; key?: boolean }, command: Command) => {
        const { client, out } = contextOf(command);
        const cert = await unwrap(client.getCertificate({ params: { path: { id } } }));
        const written: Record<string, string> = {};
        if (options.out) {
          const dir = resolve(options.out);
          await mkdir(dir, { recursive: true });
          written.fullchain = join(dir, 'fullchain.pem');
          await writeAtomically(written.fullchain, cert.certificatePem, 0o644);
          if (options.key) {
            const { privateKey } = await unwrap(
              client.getCertificatePrivateKey({ params: { path: { id } } }),
            );
            written.privkey = join(dir, 'privkey.pem');
            await writeAtomically(written.privkey, privateKey, 0o600);
          }
        }
        out.data({ ...cert, ...(options.out ? { written } : {}) });
        out.line(table(CERT_HEAD, certificateRows([cert])));
        out.line(`fingerprint (SHA-256): ${cert.fingerprint}`);
        for (const path of Object.values(written)) out.line(`wrote ${path}`);
        if (!options.out) out.line(cert.certificatePem.trimEnd());
      }),
    );

  certs
    .command('retire')
    .description(
      'retire a certificate: renewals stop, TLS servers stop presenting it (an active order for its domains is cancelled)',
    )
    .argument('<id>', 'certificate id')
    .action(
      run(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = contextOf(command);
        const cert = await unwrap(client.retireCertificate({ params: { path: { id } } }));
        out.data(cert);
        out.line(table(CERT_HEAD, certificateRows([cert])));
        if (cert.cancelledOrderId) out.line(`cancelled the active order ${cert.cancelledOrderId}`);
      }),
    );

  certs
    .command('upload')
    .description('bring your own certificate: served like an issued one, never renewed by certq')
    .requiredOption('--cert <file>', 'PEM chain: the leaf, then its intermediates')
    .requiredOption('--key <file>', 'the private key, PEM (unencrypted)')
    .option('--tenant <id>', 'operator: the tenant it is for')
    .action(
      run(async (options: { cert: string; key: string; tenant?: string }, command: Command) => {
        const { client, out } = contextOf(command);
        const [certificate, privateKey] = await Promise.all([
          readFile(options.cert, 'utf8'),
          readFile(options.key, 'utf8'),
        ]);
        const cert = await unwrap(
          client.uploadCertificate({
            body: { certificate, privateKey, ...(options.tenant ? { tenantId: options.tenant } : {}) },
          }),
        );
        out.data(cert);
        out.line(table(CERT_HEAD, certificateRows([cert])));
      }),
    );
}
