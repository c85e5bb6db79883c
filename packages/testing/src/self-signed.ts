import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSigned {
  certificate: string;
  privateKey: string;
}

/**
 * A self-signed P-256 certificate for `name` (its CN and only DNS SAN) and its key, made by the openssl
 * CLI: a leaf (CA:FALSE) unless `ca`. With `dir`, the files stay there as `cert.pem` and `key.pem`.
 */
export function selfSigned(
  name: string,
  options: { ca?: boolean; days?: number; dir?: string } = {},
): SelfSigned {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'certq-self-signed-'));
  try {
    execFileSync(
      '/usr/bin/openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        String(options.days ?? 10),
        '-subj',
        `/CN=${name}`,
        '-addext',
        `basicConstraints=critical,CA:${options.ca ? 'TRUE' : 'FALSE'}`,
        '-addext',
        `subjectAltName=DNS:${name}`,
      ],
      { stdio: 'ignore' },
    );
    return {
      certificate: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      privateKey: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
  }
}
