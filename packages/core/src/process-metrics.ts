import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's gauges whose names end in `_total`, a suffix Prometheus keeps for counters
 * (`promtool check metrics` refuses them). Their per-type siblings (`…nodejs_active_handles{type}`,
 * `…_requests`, `…_resources`) stay: their sum is the same total.
 */
const GAUGES_NAMED_AS_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** The process's own metrics (CPU, memory, event loop, GC, handles) under `prefix`, as both apps export them. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of GAUGES_NAMED_AS_COUNTERS) registry.removeSingleMetric(`${prefix}${name}`);
}
