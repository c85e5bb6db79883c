import { launch } from './launcher';
import { MissingServiceError } from './local-services';

/**
 * `pnpm start`: the whole system in one process tree (see launcher.ts). Ctrl-C or SIGTERM stops it
 * cleanly; a second signal exits at once.
 */
let launched: Awaited<ReturnType<typeof launch>>;
try {
  launched = await launch();
} catch (error) {
  if (error instanceof MissingServiceError) {
    console.error(`\ncertq cannot start: ${error.message}\n`);
  } else {
    console.error('\ncertq failed to start:', error instanceof Error ? error.message : error, '\n');
    if (error instanceof Error && error.stack && process.env.LOG_LEVEL === 'debug') console.error(error.stack);
  }
  process.exit(1);
}
console.log(launched.banner);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) {
      console.error(`\n${signal} again: exiting without waiting (private PostgreSQL/Redis may be left running; the next start adopts them)`);
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping (worker drains its jobs, then the API, simulator, database and Redis stop)…`);
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
