import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../probes';
import { launchServer, removeDir, requireBinary, type TlsServer, tempDir } from './common';

/**
 * A private nginx on loopback serving the layout certq-agent writes (`--format nginx`) in `certDir`:
 * one `server` block for every name, the certificate chosen per handshake from `$ssl_server_name`
 * through the agent's `certq-names.map` (the configuration docs/delivery.md shows). nginx must find
 * the map when it starts, so start it after the agent's first sync. `reloadCommand` is what to give
 * `certq-agent --reload`.
 */
export async function startNginx(options: {
  certDir: string;
}): Promise<TlsServer & { reloadCommand: string; reload(): void; pid(): number }> {
  const binary = requireBinary('nginx', 'nginx');
  const dir = tempDir('nginx');
  mkdirSync(join(dir, 'logs'));
  const port = await freePort();
  // As root, nginx's workers would switch to "nobody", which cannot read the agent's 0600 keys that
  // the workers load per handshake (variables in ssl_certificate); keep them as the agent's user.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf = `${user}daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path ${join(dir, 'body')};
	proxy_temp_path ${join(dir, 'proxy')};
	fastcgi_temp_path ${join(dir, 'fastcgi')};
	uwsgi_temp_path ${join(dir, 'uwsgi')};
	scgi_temp_path ${join(dir, 'scgi')};

	map $ssl_server_name $certq_name {
		hostnames;
		default "";
		include ${join(options.certDir, 'certq-names.map')};
	}

	server {
		listen 127.0.0.1:${port} ssl;
		ssl_certificate ${join(options.certDir, '$certq_name', 'fullchain.pem')};
		ssl_certificate_key ${join(options.certDir, '$certq_name', 'privkey.pem')};
		location / { return 200 "served by nginx for $ssl_server_name\\n"; }
	}
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const args = ['-p', dir, '-c', confPath];
  const test = spawnSync(binary, [...args, '-t'], { encoding: 'utf8' });
  if (test.status !== 0) {
    removeDir(dir);
    throw new Error(`nginx -t rejected the test configuration:\n${test.stderr}`);
  }
  const { child, ...server } = await launchServer({
    binary,
    args,
    port,
    dir,
    what: 'nginx',
    stopSignal: 'SIGQUIT', // graceful: workers finish their connections
  });
  const reloadCommand = `${binary} -p ${dir} -c ${confPath} -s reload`;
  return {
    ...server,
    reloadCommand,
    pid: () => child.pid!,
    reload() {
      const r = spawnSync('sh', ['-c', reloadCommand], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`nginx reload failed: ${r.stderr}`);
    },
  };
}
