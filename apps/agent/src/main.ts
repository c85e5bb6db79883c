import { runAgent } from './agent';
import { parseAgentArgs, USAGE, UsageError } from './args';
import { jsonLogger } from './log';
import { AGENT_VERSION } from './version';

const log = jsonLogger();

let options: ReturnType<typeof parseAgentArgs>;
try {
  options = parseAgentArgs(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`certq-agent: ${error.message}\n\n${USAGE}\n`);
  process.exit(64);
}
if (options === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (options === 'version') {
  process.stdout.write(`certq-agent ${AGENT_VERSION}\n`);
  process.exit(0);
}
log.info(`certq-agent ${AGENT_VERSION}`, { version: AGENT_VERSION, node: process.version });
// Every file write is atomic: stopping at any point leaves complete files.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
runAgent(options, log).then(
  (code) => process.exit(code),
  (error) => {
    log.error(`certq-agent: ${(error as Error).message}`);
    process.exit(1);
  },
);
