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
