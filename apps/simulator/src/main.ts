import { loadSimulatorOptions } from './config';
import { createSimulator } from './server';

let options: ReturnType<typeof loadSimulatorOptions>;
try {
  options = loadSimulatorOptions(process.env);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}

// Request logs on by default; SIM_LOG=false for benchmarks.
const sim = createSimulator({ ...options, logger: process.env.SIM_LOG !== 'false' });
const url = await sim.listen(options.port, options.host);
sim.app.log.info(
  {
    verify: options.verify,
    dnsResolver: options.dnsResolver,
    caFailures: options.caFailures,
    issueSeconds: options.issueSeconds,
    certLifetimeMs: options.certLifetimeMs,
    failRate: options.failRate,
    latencyMs: options.latencyMs,
    apiKeys: options.apiKeys.length === 0 ? 'any' : `${options.apiKeys.length} configured`,
    caDir: options.caDir ?? '(in memory)',
  },
  `httpsok simulator listening on ${url} (root CA: ${url}/_sim/ca)`,
);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  sim.app.log.info(`${signal} received, closing`);
  try {
    await sim.close();
    process.exit(0);
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
