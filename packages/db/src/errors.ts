/** The Postgres error behind a (possibly drizzle-wrapped) error, if any. */
export function pgErrorOf(
  error: unknown,
): { code?: string; constraint?: string; message: string } | undefined {
  for (
    let current = error as { cause?: unknown; code?: unknown } | undefined, depth = 0;
    current && depth < 5;
    depth++
  ) {
    if (typeof current.code === 'string' && /^[0-9A-Z]{5}$/.test(current.code)) {
      return current as { code: string; constraint?: string; message: string };
    }
    current = current.cause as typeof current;
  }
  return undefined;
}

/** Name of the constraint a failed statement violated (unique, check, foreign key), if that is why it failed. */
export function violatedConstraint(error: unknown): string | undefined {
  return pgErrorOf(error)?.constraint;
}

/**
 * Postgres (or the way to it) is away: refused or cut connections, pool timeouts, admin shutdown,
 * a server starting up, too many connections. Worth waiting for, never worth failing an order over.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (
    let current = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0;
    current && depth < 6;
    depth++
  ) {
    const code = typeof current.code === 'string' ? current.code : '';
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE'].includes(code))
      return true;
    if (/^(08|53|57P)/.test(code)) return true;
    if (
      typeof current.message === 'string' &&
      /timeout exceeded when trying to connect|Connection terminated|not queryable|Connection ended/i.test(
        current.message,
      )
    )
      return true;
    current = current.cause as typeof current;
  }
  return false;
}
