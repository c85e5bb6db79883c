import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, freePort, uidGid } from './probes';

/*
 * A real authoritative DNS server for tests: Debian bind9's `named`, private to one test file, on a free
 * loopback port in a temp dir. It serves the root zone ".", so every name a test uses (`example.com`,
 * `a.example.co.uk`, an IDN in punycode) is answered authoritatively: NXDOMAIN when absent, NODATA when the
 * name exists without the asked type, and CAA lookups can climb all the way to the root as RFC 8659 says.
 * Records change through `nsupdate` signed with a TSIG key, exactly as an operator's DNS API would.
 * Every record is written with TTL 0 (and the SOA's negative TTL is 0), so no resolver cache hides a change.
 */

export interface NamedServer {
  /** `127.0.0.1:<port>`, the form `DNS_RESOLVERS` and `SIM_DNS_RESOLVER` take. */
  address: string;
  host: string;
  port: number;
  /** Replaces the CNAME of `name` (absolute, without trailing dot) with `target`. */
  setCname(name: string, target: string): Promise<void>;
  /** Removes every record of `name` of the given type (default CNAME). */
  deleteRecords(name: string, type?: string): Promise<void>;
  /** Adds CAA records to `name`, e.g. `['0 issue "letsencrypt.org"']` (existing CAA records of the name are replaced). */
  setCaa(name: string, records: string[]): Promise<void>;
  /** Runs raw `nsupdate` update lines (`update add …`) in one signed transaction. */
  update(lines: string[]): Promise<void>;
  /** Stops answering (SIGSTOP): queries time out until `thaw()`. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

export interface StartNamedOptions {
  /**
   * Zones declared but never loadable (their file is missing): named answers SERVFAIL for every name in
   * them, as a broken authoritative server of a tenant does.
   */
  servfailZones?: string[];
}

const KEY_NAME = 'certq-test';

function missingPackage(binary: string, pkg: string): Error {
  return new Error(
    `${binary} was not found: the DNS tests run a real authoritative server. Install Debian's ${pkg} (apt-get install bind9 bind9-dnsutils).`,
  );
}

/** Starts a private `named`; throws naming `bind9` / `bind9-dnsutils` when the binaries are missing. */
export async function startNamed(options: StartNamedOptions = {}): Promise<NamedServer> {
  const named = findBinary('named', ['/usr/sbin', '/usr/local/sbin']);
  if (!named) throw missingPackage('named', 'bind9');
  const nsupdateFound = findBinary('nsupdate', ['/usr/bin']);
  if (!nsupdateFound) throw missingPackage('nsupdate', 'bind9-dnsutils');
  const nsupdate: string = nsupdateFound;

  const dir = mkdtempSync(join(tmpdir(), 'certq-named-'));
  const port = await freePort();
  const secret = randomBytes(32).toString('base64');
  const zoneFile = join(dir, 'root.zone');
  writeFileSync(
    zoneFile,
    [
      '$TTL 0',
      '. IN SOA ns.certq-test. hostmaster.certq-test. 1 60 60 600 0',
      '. IN NS ns.certq-test.',
      'ns.certq-test. IN A 127.0.0.1',
      '',
    ].join('\n'),
  );
  const brokenZones = (options.servfailZones ?? [])
    .map((zone) => `zone "${zone}" { type primary; file "${join(dir, 'absent', `${zone}.zone`)}"; };`)
    .join('\n');
  const conf = join(dir, 'named.conf');
  writeFileSync(
    conf,
    `key "${KEY_NAME}" { algorithm hmac-sha256; secret "${secret}"; };
controls { };
options {
  directory "${dir}";
  pid-file "${join(dir, 'named.pid')}";
  session-keyfile "${join(dir, 'session.key')}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { any; };
  minimal-responses yes;
};
zone "." { type primary; file "${zoneFile}"; allow-update { key "${KEY_NAME}"; }; };
${brokenZones}
`,
  );
  // named runs as root happily, but on a machine where it insists on dropping privileges it needs the
  // temp dir to belong to `bind` (it writes the journal of every update there).
  const asRoot = process.getuid?.() === 0;
  const bind = asRoot ? uidGid('bind') : undefined;
  if (bind) {
    chownSync(dir, ...bind);
    chownSync(zoneFile, ...bind);
    chownSync(conf, ...bind);
  }
  const args = ['-g', '-c', conf, '-n', '1', ...(bind ? ['-u', 'bind'] : [])];
  const child: ChildProcess = spawn(named, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.setEncoding('utf8');
  const running = new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: string) => {
      log += chunk;
      if (log.length > 64_000) log = log.slice(-32_000);
      // The last startup line is "<time> running"; an early one says "running on Linux …", before the
      // zones are loaded (a query then is refused, which a test would read as lookup_failed).
      if (/\srunning\r?\n/.test(log)) resolve();
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`named exited (${code ?? signal}) before it ran:\n${log}`)),
    );
    child.once('error', reject);
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    await running;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  } finally {
    clearTimeout(timeout);
  }

  let stopped = false;
  async function update(lines: string[]): Promise<void> {
    const script = [`server 127.0.0.1 ${port}`, 'zone .', ...lines, 'send', ''].join('\n');
    const proc = spawn(nsupdate, ['-y', `hmac-sha256:${KEY_NAME}:${secret}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout?.on('data', (c: Buffer) => {
      output += c;
    });
    proc.stderr?.on('data', (c: Buffer) => {
      output += c;
    });
    proc.stdin?.end(script);
    const [code] = (await once(proc, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`nsupdate failed (${code}): ${output.trim()}\n${script}`);
  }
  const abs = (name: string) => `${name.replace(/\.$/, '')}.`;

  return {
    address: `127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    update,
    setCname: (name, target) =>
      update([`update delete ${abs(name)} CNAME`, `update add ${abs(name)} 0 CNAME ${abs(target)}`]),
    deleteRecords: (name, type = 'CNAME') => update([`update delete ${abs(name)} ${type}`]),
    setCaa: (name, records) =>
      update([`update delete ${abs(name)} CAA`, ...records.map((r) => `update add ${abs(name)} 0 CAA ${r}`)]),
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
    async stop() {
      if (stopped) return;
      stopped = true;
      child.kill('SIGCONT');
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(kill);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SilentResolver {
  /** `127.0.0.1:<port>`: a UDP socket that reads every query and never answers (a resolver that times out). */
  address: string;
  /** Queries received so far. */
  readonly received: number;
  close(): Promise<void>;
}

/** A "resolver" that swallows every query, for `lookup_failed` by timeout. */
export async function startSilentResolver(): Promise<SilentResolver> {
  const socket: Socket = createSocket('udp4');
  let received = 0;
  socket.on('message', () => {
    received++;
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    get received() {
      return received;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
