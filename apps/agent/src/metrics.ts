/** What the agent counts; rendered as Prometheus text by /metrics and read by /healthz. */
export class AgentMetrics {
  /** Feed position whose changes are all on disk. */
  cursor = 0;
  /** The newest feed position certq has shown the agent. */
  head = 0;
  /** When the agent last heard from certq and had applied everything it was told (ms). */
  lastSuccessAt: number | undefined;
  startedAt = Date.now();
  certificates = 0;
  /** Certificates not written in the last batch (their names are in `skippedNames`). */
  skipped = 0;
  skippedTotal = 0;
  syncErrorsTotal = 0;
  reloadsTotal = 0;
  runtimeCommandsTotal = 0;
  runtimeFailuresTotal = 0;
  servedTotal = { hit: 0, miss: 0 };

  /** Seconds since the last successful sync (since start if none yet). */
  syncAgeSeconds(now = Date.now()): number {
    return (now - (this.lastSuccessAt ?? this.startedAt)) / 1000;
  }

  render(now = Date.now()): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, values: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of values) lines.push(`${name}${labels} ${value}`);
    };
    metric('certq_agent_cursor', 'gauge', 'Feed position applied to the files.', [['', this.cursor]]);
    metric('certq_agent_cursor_lag', 'gauge', 'Changes certq has shown that are not on disk yet.', [
      ['', Math.max(0, this.head - this.cursor)],
    ]);
    metric('certq_agent_last_success_timestamp_seconds', 'gauge', 'Last successful sync (0: none yet).', [
      ['', this.lastSuccessAt ? this.lastSuccessAt / 1000 : 0],
    ]);
    metric('certq_agent_sync_age_seconds', 'gauge', 'Seconds since the last successful sync.', [
      ['', this.syncAgeSeconds(now)],
    ]);
    metric('certq_agent_certificates', 'gauge', 'Certificates on disk.', [['', this.certificates]]);
    metric('certq_agent_skipped_certificates', 'gauge', 'Certificates the last batch could not write.', [
      ['', this.skipped],
    ]);
    metric('certq_agent_skipped_total', 'counter', 'Certificate writes skipped after an error.', [
      ['', this.skippedTotal],
    ]);
    metric('certq_agent_sync_errors_total', 'counter', 'Syncs that failed (certq unreachable…).', [
      ['', this.syncErrorsTotal],
    ]);
    metric('certq_agent_reloads_total', 'counter', 'Reload commands run.', [['', this.reloadsTotal]]);
    metric('certq_agent_runtime_api_commands_total', 'counter', 'HAProxy Runtime API commands sent.', [
      ['', this.runtimeCommandsTotal],
    ]);
    metric('certq_agent_runtime_api_failures_total', 'counter', 'HAProxy Runtime API batches that failed.', [
      ['', this.runtimeFailuresTotal],
    ]);
    metric('certq_agent_served_total', 'counter', 'get_certificate answers (caddy), by result.', [
      ['{result="hit"}', this.servedTotal.hit],
      ['{result="miss"}', this.servedTotal.miss],
    ]);
    return `${lines.join('\n')}\n`;
  }
}
