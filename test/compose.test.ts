import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { configSchema } from '@certq/core';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

/**
 * Deployment files checked without Docker or a cluster: docker-compose.yml, the Dockerfile and its
 * entrypoint, the Kubernetes manifests. What they promise in infra/README.md must hold here.
 */
const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const CONFIG_VARIABLES = new Set(Object.keys(configSchema.shape));

// biome-ignore lint/suspicious/noExplicitAny: YAML documents are inspected field by field
type Doc = any;

describe('docker-compose.yml', () => {
  const compose: Doc = parse(read('docker-compose.yml'), { merge: true });
  const services: Record<string, Doc> = compose.services;

  it('has every service the docs mention', () => {
    for (const name of ['postgres', 'redis', 'simulator', 'migrate', 'api', 'worker'])
      expect(Object.keys(services)).toContain(name);
  });

  it('gives every long-running service a healthcheck; migrate is the one-shot', () => {
    for (const [name, service] of Object.entries(services)) {
      if (name === 'migrate') {
        expect(service.restart).toBe('no');
        expect(service.healthcheck).toBeUndefined();
        continue;
      }
      expect(service.healthcheck?.test, `${name} healthcheck`).toBeDefined();
    }
  });

  it('runs Redis with AOF and noeviction, and PostgreSQL 16, both on volumes', () => {
    const command = services.redis.command.join(' ');
    expect(command).toMatch(/--appendonly yes/);
    expect(command).toMatch(/--maxmemory-policy noeviction/);
    expect(services.redis.image).toMatch(/^redis:7/);
    expect(services.postgres.image).toMatch(/^postgres:16/);
    expect(services.postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(services.postgres.volumes.length).toBeGreaterThan(0);
    expect(services.redis.volumes.length).toBeGreaterThan(0);
  });

  it('starts api and worker only after migrate completed and Redis is healthy', () => {
    expect(services.migrate.depends_on.postgres.condition).toBe('service_healthy');
    for (const name of ['api', 'worker']) {
      expect(services[name].depends_on.migrate.condition).toBe('service_completed_successfully');
      expect(services[name].depends_on.redis.condition).toBe('service_healthy');
    }
  });

  it('configures api and worker with known variables only, pointing at the simulator', () => {
    for (const name of ['api', 'worker']) {
      const env: Record<string, unknown> = services[name].environment;
      for (const key of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${key}`).toContain(key);
      for (const key of ['DATABASE_URL', 'REDIS_URL', 'HTTPSOK_BASE_URL', 'ADMIN_TOKEN', 'ENCRYPTION_KEY'])
        expect(env[key], `${name}: ${key}`).toBeTruthy();
      expect(String(env.HTTPSOK_BASE_URL)).toContain('http://simulator:4010');
      expect(String(env.DATABASE_URL)).toContain('@postgres:5432/');
      expect(env.REDIS_URL).toBe('redis://redis:6379');
    }
    expect(services.api.ports).toContain('3000:3000');
    expect(services.api.environment.PORT).toBe(3000);
    expect(services.worker.environment.WORKER_METRICS_PORT).toBe(9464);
    expect(services.simulator.environment.SIM_HOST).toBe('0.0.0.0');
  });

  it('builds the certq services from the one Dockerfile, one target each, pruned to its app', () => {
    const apps = {
      simulator: '@certq/simulator',
      migrate: '@certq/db',
      api: '@certq/api',
      worker: '@certq/worker',
    };
    for (const [name, app] of Object.entries(apps)) {
      expect(services[name].build.dockerfile).toBe('infra/docker/Dockerfile');
      expect(services[name].build.target).toBe(name);
      expect(services[name].build.args.APP).toBe(app);
    }
  });

  it('puts Prometheus and Grafana under the monitoring profile, mounting the infra configs', () => {
    for (const name of ['prometheus', 'grafana']) expect(services[name].profiles).toEqual(['monitoring']);
    const mounts = [...services.prometheus.volumes, ...services.grafana.volumes].join('\n');
    for (const path of [
      './infra/prometheus/prometheus.yml',
      './infra/prometheus/alerts.yml',
      './infra/grafana/provisioning',
      './infra/grafana/dashboards',
    ]) {
      expect(mounts).toContain(path);
      expect(existsSync(join(root, path))).toBe(true);
    }
  });
});

describe('infra/docker/Dockerfile', () => {
  const dockerfile = read('infra/docker/Dockerfile');
  const entrypoint = read('infra/docker/entrypoint.sh');

  it('builds on Node 22 with pnpm from a frozen lockfile and runs as a non-root user', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:22[\w.-]*$/m);
    expect(dockerfile).toMatch(/pnpm install --frozen-lockfile[^\n]*--prod=false/);
    expect(dockerfile).toMatch(/corepack enable/);
    const users = [...dockerfile.matchAll(/^USER (\S+)/gm)].map((m) => m[1]);
    expect(users.length).toBeGreaterThan(0);
    for (const user of users) expect(user).not.toMatch(/^(root|0)(:|$)/);
  });

  it('has a target per process, each with a health check (none for the one-shot migrate)', () => {
    const targets = [...dockerfile.matchAll(/^FROM \S+ AS (\S+)/gm)].map((m) => m[1]);
    expect(targets).toEqual(expect.arrayContaining(['api', 'worker', 'simulator', 'migrate']));
    for (const target of ['api', 'worker', 'simulator']) {
      const stage = dockerfile.split(/^FROM /m).find((s) => s.includes(` AS ${target}\n`))!;
      expect(stage, target).toMatch(/HEALTHCHECK --interval/);
      expect(stage).toMatch(new RegExp(`CMD \\["${target}"\\]`));
      // The probe is the entrypoint's `healthz PORT`, on a port variable the runtime stage sets.
      const portVariable = /CMD certq healthz "\$(\w+)"/.exec(stage)?.[1];
      expect(dockerfile, target).toMatch(new RegExp(`^\\s+${portVariable}=\\d+`, 'm'));
    }
  });

  it('answers `certq healthz PORT` with 0 when /healthz is 200 and 1 when nothing listens', async () => {
    const script = /^\s+healthz\)\s+exec node -e "(.*)" "\$1" ;;$/m.exec(entrypoint)?.[1];
    expect(script).toBeDefined();
    const server = createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const probe = (onPort: number) =>
      new Promise<number | null>((resolve) =>
        execFile(process.execPath, ['-e', script!, String(onPort)], (error) =>
          resolve(error ? (error.code as number) : 0),
        ),
      );
    expect(await probe(port)).toBe(0);
    await new Promise((resolve) => server.close(resolve));
    expect(await probe(port)).toBe(1);
  });

  it('maps every target of the entrypoint to an existing source file', () => {
    expect(entrypoint).toMatch(/^\s+healthz\)\s+exec node -e ".*\/healthz'\)/m);
    // Each process runs with the tsx of its own package, a production dependency of it.
    const runs = [...entrypoint.matchAll(/exec node "\$\(tsx (\S+)\)" (\S+)/g)].map(
      (m) => [m[1]!, m[2]!] as const,
    );
    expect(runs.length).toBe(4); // api, worker, simulator, migrate
    for (const [pkg, file] of runs) {
      expect(file.startsWith(`${pkg}/`), file).toBe(true);
      expect(existsSync(join(root, file)), file).toBe(true);
      expect(Object.keys(JSON.parse(read(`${pkg}/package.json`)).dependencies), pkg).toContain('tsx');
    }
    expect(entrypoint).toContain('tsx() { echo "$1/node_modules/tsx/dist/cli.mjs"; }');
    // The agent is the standalone bundle `pnpm build` writes (the build stage runs it).
    expect(entrypoint).toMatch(/^\s+agent\)\s+exec node apps\/agent\/dist\/certq-agent\.mjs "\$@"/m);
    expect(JSON.parse(read('package.json')).scripts.build).toMatch(/turbo run .*\bbuild\b/);
    expect(JSON.parse(read('apps/agent/package.json')).scripts.build).toBeDefined();
    expect(dockerfile).toMatch(/pnpm --filter "\$app" run --if-present build/);
  });

  it('installs every stage from the pruned manifests, which carry the patched dependencies', () => {
    const patches = Object.values(
      JSON.parse(read('package.json')).pnpm.patchedDependencies as Record<string, string>,
    );
    expect(patches.length).toBeGreaterThan(0);
    for (const file of patches) expect(existsSync(join(root, file)), file).toBe(true);
    // `turbo prune --docker` copies package.json#pnpm.patchedDependencies' files into out/json.
    expect(dockerfile).toMatch(/^ && pnpm dlx "turbo@\$\{TURBO\}" prune \$\{APP\} --docker$/m);
    const installing = dockerfile.split(/^FROM /m).filter((stage) => /pnpm install/.test(stage));
    expect(installing.length).toBe(2);
    for (const stage of installing) expect(stage).toMatch(/^COPY --from=prune \/app\/out\/json\/ \.\/$/m);
  });

  it('keeps secrets, local data and node_modules out of the build context', () => {
    const ignored = read('.dockerignore');
    for (const entry of ['**/node_modules', '.certq', '.env', '.git']) expect(ignored).toContain(entry);
  });
});

describe('the edge: the agent image and its Kubernetes example', () => {
  it('has a small agent target: Node alone and the bundled file, non-root', () => {
    const stage = read('infra/docker/Dockerfile')
      .split(/^FROM /m)
      .find((s) => s.includes(' AS agent\n'))!;
    expect(stage).toMatch(/^\$\{AGENT_NODE_IMAGE\} AS agent/);
    expect(stage).toContain('COPY --from=build --chown=node:node /app/apps/agent/dist/certq-agent.mjs');
    expect(stage).toMatch(/^USER node$/m);
    expect(stage).not.toMatch(/pnpm|node_modules/);
  });

  it('runs the agent image as a sidecar and an init container, with its health probe', () => {
    const docs = parseAllDocuments(read('infra/k8s/edge/edge-nginx.yaml')).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS();
    });
    const spec = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
    expect(spec.securityContext.runAsNonRoot).toBe(true);
    const agents = [...spec.initContainers, ...spec.containers].filter((c: Doc) =>
      c.image.includes('certq/agent'),
    );
    expect(agents.map((c: Doc) => c.name)).toEqual(['first-sync', 'certq-agent']);
    expect(agents[0].args).toContain('--once');
    expect(agents[1].livenessProbe.httpGet.path).toBe('/healthz');
    expect(parse(read('infra/k8s/edge/kustomization.yaml')).resources).toEqual(['edge-nginx.yaml']);
  });
});

describe('infra/k8s', () => {
  const dir = join(root, 'infra/k8s');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  const docs: Doc[] = files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
      expect(d.errors, file).toEqual([]);
      return d.toJS();
    }),
  );
  const find = (kind: string, name: string) =>
    docs.find((d) => d?.kind === kind && d.metadata?.name === name);

  it('has the API and worker Deployments, Services, the migration Job, Secret and ConfigMap', () => {
    for (const [kind, name] of [
      ['Deployment', 'certq-api'],
      ['Deployment', 'certq-worker'],
      ['Service', 'certq-api'],
      ['Job', 'certq-migrate'],
      ['Secret', 'certq-secrets'],
      ['ConfigMap', 'certq-config'],
    ] as const) {
      expect(find(kind, name), `${kind} ${name}`).toBeDefined();
    }
  });

  it('is namespace-free and lists every manifest in the kustomization', () => {
    for (const doc of docs) expect(doc.metadata.namespace).toBeUndefined();
    const kustomization: Doc = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
    expect([...kustomization.resources].sort()).toEqual([...files].sort());
  });

  it('probes the API on /healthz and /readyz, the worker on /healthz', () => {
    const api = find('Deployment', 'certq-api').spec.template.spec.containers[0];
    expect(api.livenessProbe.httpGet.path).toBe('/healthz');
    expect(api.readinessProbe.httpGet.path).toBe('/readyz');
    const worker = find('Deployment', 'certq-worker').spec.template.spec.containers[0];
    expect(worker.livenessProbe.httpGet.path).toBe('/healthz');
  });

  it('gives workers time to drain and runs every pod as non-root', () => {
    expect(
      find('Deployment', 'certq-worker').spec.template.spec.terminationGracePeriodSeconds,
    ).toBeGreaterThanOrEqual(60);
    for (const doc of docs.filter((d) => ['Deployment', 'Job'].includes(d.kind))) {
      expect(doc.spec.template.spec.securityContext.runAsNonRoot, doc.metadata.name).toBe(true);
    }
  });

  it('configures pods from the ConfigMap and Secret with known variables only', () => {
    const configMap = find('ConfigMap', 'certq-config');
    const secret = find('Secret', 'certq-secrets');
    for (const key of [...Object.keys(configMap.data), ...Object.keys(secret.stringData)])
      expect(CONFIG_VARIABLES, key).toContain(key);
    for (const name of ['certq-api', 'certq-worker']) {
      const container = find('Deployment', name).spec.template.spec.containers[0];
      expect(container.envFrom).toEqual([
        { configMapRef: { name: 'certq-config' } },
        { secretRef: { name: 'certq-secrets' } },
      ]);
    }
    const migrate = find('Job', 'certq-migrate').spec.template.spec.containers[0];
    expect(migrate.env[0].valueFrom.secretKeyRef).toEqual({ name: 'certq-secrets', key: 'DATABASE_URL' });
  });

  it('routes the Services to ports the containers expose', () => {
    const api = find('Deployment', 'certq-api');
    const service = find('Service', 'certq-api');
    expect(service.spec.selector).toEqual(api.spec.selector.matchLabels);
    const named = api.spec.template.spec.containers[0].ports.map((p: Doc) => p.name);
    for (const port of service.spec.ports) expect(named).toContain(port.targetPort);
  });
});
