import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Test certificates made with the openssl CLI, so the helpers are checked against an independent implementation. */
export interface TestPki {
  dir: string;
  caCert: string;
  /** Leaf for *.example.com + example.com, ECC P-256. */
  ecLeaf: string;
  ecChain: string;
  ecKeySec1: string;
  ecKeyPkcs8: string;
  /** Leaf for api.example.org + WWW.Example.org (mixed case on purpose), RSA 2048. */
  rsaLeaf: string;
  rsaChain: string;
  rsaKeyPkcs1: string;
  rsaKeyPkcs8: string;
  /** A key that belongs to neither certificate. */
  otherEcKey: string;
  openssl(args: string[]): string;
  cleanup(): void;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'certq-pki-'));
  const openssl = (args: string[]) =>
    execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');

  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '30',
    '-subj',
    '/CN=certq test root',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);

  const leaf = (name: string, keyFile: string, sans: string, serial: string) => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${sans}\nbasicConstraints=CA:FALSE\n`);
    openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
    openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      serial,
      '-days',
      '90',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ]);
  };

  // `ecparam -genkey -noout` writes SEC1 ("EC PRIVATE KEY"); `genrsa -traditional` writes PKCS#1.
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key']);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', 'ec.key', '-out', 'ec.p8.key']);
  leaf('ec', 'ec.key', 'DNS:*.example.com,DNS:example.com', '4097');

  openssl(['genrsa', '-traditional', '-out', 'rsa.key', '2048']);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', 'rsa.key', '-out', 'rsa.p8.key']);
  leaf('rsa', 'rsa.key', 'DNS:api.example.org,DNS:WWW.Example.org,IP:127.0.0.1', '4098');

  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other.key']);

  const caCert = read('ca.pem');
  return {
    dir,
    caCert,
    ecLeaf: read('ec.pem'),
    ecChain: read('ec.pem') + caCert,
    ecKeySec1: read('ec.key'),
    ecKeyPkcs8: read('ec.p8.key'),
    rsaLeaf: read('rsa.pem'),
    rsaChain: read('rsa.pem') + caCert,
    rsaKeyPkcs1: read('rsa.key'),
    rsaKeyPkcs8: read('rsa.p8.key'),
    otherEcKey: read('other.key'),
    openssl,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
