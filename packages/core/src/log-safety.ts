/**
 * pino's `err` serializer, minus what must never reach a log: a failed query's bound parameters
 * (drizzle puts them in the message, the stack's first line and `params`; they carry tenant input and,
 * for some statements, sealed secrets) and Postgres' `detail` (which quotes row values). What stays
 * tells an operator what failed: type, message without values, SQL text with placeholders, codes,
 * constraint, stack, causes.
 */
const DROPPED = new Set(['params', 'parameters', 'detail', 'where', 'internalQuery', 'values', 'body']);

export function safeErrorSerializer(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error) || depth > 5) return error;
  const out: Record<string, unknown> = { type: error.constructor?.name ?? error.name };
  const message = stripParams(error.message);
  out.message = message;
  if (typeof error.stack === 'string') {
    const firstFrame = error.stack.indexOf('\n    at ');
    out.stack = `${error.name}: ${message}${firstFrame >= 0 ? error.stack.slice(firstFrame) : ''}`;
  }
  for (const [key, value] of Object.entries(error)) {
    if (DROPPED.has(key) || key === 'cause' || key === 'message' || key === 'stack') continue;
    out[key] = typeof value === 'string' ? stripParams(value) : value;
  }
  if (error.cause !== undefined) out.cause = safeErrorSerializer(error.cause, depth + 1);
  return out;
}

/** `Failed query: … \nparams: a,b` → `Failed query: …` */
function stripParams(text: string): string {
  const at = text.search(/\n\s*params:/);
  return at >= 0 ? text.slice(0, at) : text;
}

/** For `pino({ serializers })`: every logged `err` / `error` goes through the safe serializer. */
export const SAFE_ERROR_SERIALIZERS = { err: safeErrorSerializer, error: safeErrorSerializer };
