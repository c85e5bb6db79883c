import { launch } from './launcher';
import { MissingServiceError } from './local-services';

/**
 * `pnpm start`: the whole system in one process tree (see launcher.ts). Ctrl-C or SIGTERM stops it
 * cleanly; a second signal (two seconds or more after the first) exits at once.
 */
let launched: Awaited<ReturnType<typeof launch>>;
try {
  launched = await launch();
} catch (error) {
  if (error instanceof MissingServiceError) {
    console.error(`\ncertq cannot start: ${error.message}\n`);
  } else {
    console.error('\ncertq failed to start:', error, '\n');
  }
  process.exit(1);
}
console.log(launched.banner);

// A terminal's Ctrl-C reaches this process twice (directly and relayed by pnpm/tsx): a repeat within
// two seconds is the same request; a later one means "stop waiting".
let stoppingSince: number | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < 2000) return;
      console.error(
        `\n${signal} again: exiting without waiting (private PostgreSQL/Redis may be left running; the next start adopts them)`,
      );
      process.exit(1);
    }
    stoppingSince = Date.now();
    // Draining waits for jobs in hand (an upstream call is bounded by UPSTREAM_TIMEOUT_MS); never forever.
    setTimeout(() => {
      console.error('still stopping after 60 s: exiting anyway');
      process.exit(1);
    }, 60_000).unref();
    console.log(
      `\n${signal}: stopping (worker drains its jobs, then the API, simulator, database and Redis stop)…`,
    );
    launched.stop().then(
      () => {
        console.log('certq stopped');
        process.exit(0);
      },
      (error) => {
        console.error('error while stopping:', error);
        process.exit(1);
      },
    );
  });
}
