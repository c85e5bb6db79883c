import { runAgent } from './agent';
import { parseAgentArgs, USAGE, UsageError } from './args';

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

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
// Every file write is atomic: stopping at any point leaves complete files.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
runAgent(options, log).then(
  (code) => process.exit(code),
  (error) => {
    log(`certq-agent: ${(error as Error).message}`);
    process.exit(1);
  },
);
