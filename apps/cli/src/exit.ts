import { CertqApiError } from '@certq/sdk';

/**
 * Exit codes (documented in the README and docs/cli.md; scripts rely on them):
 */
export const EXIT = {
  /** Everything asked was done. */
  ok: 0,
  /** An unexpected failure (a bug, an unreadable answer). */
  failure: 1,
  /** Bad usage: unknown option, missing argument, no --api/--token, unreadable or malformed file. */
  usage: 2,
  /** The token was refused (401) or may not do this (403). */
  auth: 3,
  /** The order, certificate, tenant or batch does not exist (or is another tenant's). */
  notFound: 4,
  /** The API refused the request (400, 409, 413, 415, 429). */
  refused: 5,
  /** The API could not be reached, or answered 5xx/503. */
  unavailable: 6,
  /**
   * Done, but not everything succeeded: an import with refused lines, a watch or renewal batch that
   * ended with failed or cancelled orders, a retry of which some were refused.
   */
  partial: 7,
  /** Interrupted (Ctrl-C); an import can be resumed by running it again. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI explains in one line and maps to its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(message, EXIT.usage);

export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof CertqApiError) {
    if (error.status === 401 || error.status === 403) return EXIT.auth;
    if (error.status === 404) return EXIT.notFound;
    if (error.status >= 500) return EXIT.unavailable;
    return EXIT.refused;
  }
  if (isNetworkError(error)) return EXIT.unavailable;
  return EXIT.failure;
}

/** fetch() rejects with a TypeError whose cause is the socket error. */
export function isNetworkError(error: unknown): boolean {
  return error instanceof TypeError && /fetch failed/i.test(error.message);
}

export function describeError(error: unknown): string {
  if (error instanceof CertqApiError) return `${error.status} ${error.code}: ${error.message}`;
  if (isNetworkError(error)) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return `the API could not be reached (${cause?.code ?? cause?.message ?? 'network error'})`;
  }
  return error instanceof Error ? error.message : String(error);
}
