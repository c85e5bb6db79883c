import { Command, CommanderError, Option } from 'commander';
import { registerCerts } from './commands/certs';
import { registerImport } from './commands/import';
import { registerOrders } from './commands/orders';
import { registerRenew } from './commands/renew';
import { type RunAction, registerTenants } from './commands/tenants';
import { CliError, describeError, EXIT, exitCodeOf } from './exit';

const EXIT_CODES_HELP = `
Credentials: --api/--token, or the environment variables CERTQ_API and CERTQ_TOKEN.

Exit codes:
  0  done
  1  unexpected failure
  2  bad usage (unknown option, missing argument or credentials, unreadable or malformed file)
  3  the token was refused (401) or may not do this (403)
  4  not found (or another tenant's)
  5  the API refused the request (400, 409, 413, 429)
  6  the API could not be reached, or answered 5xx
  7  done, not all of it succeeded (refused import lines, failed orders, refused retries)
  130 interrupted (an import resumes when run again)`;

/** The `certq` command tree. `exit` receives the exit code of the command that ran. */
export function buildProgram(exit: (code: number) => void): Command {
  const program = new Command('certq')
    .description(
      'certq from the command line: tenants, orders (with bulk CSV import), renewals and certificates',
    )
    .addOption(new Option('--api <url>', 'the certq API base URL').env('CERTQ_API'))
    .addOption(new Option('--token <token>', 'ADMIN_TOKEN or a tenant token').env('CERTQ_TOKEN'))
    .option('--json', 'machine-readable output: one JSON document on stdout')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride();

  const run: RunAction =
    (action) =>
    async (...args) => {
      try {
        exit((await action(...args)) ?? EXIT.ok);
      } catch (error) {
        process.stderr.write(`certq: ${describeError(error)}\n`);
        if (error instanceof CliError && error.exitCode === EXIT.failure && error.stack)
          process.stderr.write(`${error.stack}\n`);
        exit(exitCodeOf(error));
      }
    };

  registerTenants(program, run);
  const orders = registerOrders(program, run);
  registerImport(orders, run);
  registerRenew(program, run);
  registerCerts(program, run);

  // Every subcommand reports usage errors with exit code 2 rather than commander's 1.
  const exitOverride = (error: CommanderError) => {
    throw error;
  };
  for (const command of allCommands(program)) command.exitOverride(exitOverride).showHelpAfterError();
  return program;
}

function* allCommands(command: Command): Generator<Command> {
  yield command;
  for (const sub of command.commands) yield* allCommands(sub);
}

/** Runs the CLI on `argv` (process.argv shape); resolves with the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; everything else commander refuses is usage.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`certq: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
  return code;
}
