import { ALGORITHMS, CERTIFICATE_AUTHORITIES } from '@certq/core';
import { z } from 'zod';
import { errorResponses } from './plugins/errors';

/** Path `{id}`: a UUID; anything else answers 404 like an unknown id (see plugins/errors.ts). */
export const IdParams = z.strictObject({ id: z.uuid().describe('UUID') });

export const AlgorithmSchema = z.enum(ALGORITHMS);
export const CaSchema = z.enum(CERTIFICATE_AUTHORITIES);

/**
 * The responses of an operator-only listing small enough to answer whole (tenants, edge tokens):
 * `{ [key]: items }`; a tenant token gets 404, as on every operator route.
 */
export function operatorListResponse<const K extends string, Item extends z.ZodType>(key: K, item: Item) {
  const shape = { [key]: z.array(item) } as { [P in K]: z.ZodArray<Item> };
  return { 200: z.object(shape), ...errorResponses(401, 404, 429) };
}

/** A timestamp as the API shows it. */
export const Timestamp = z.string().describe('ISO-8601 timestamp');

const INVISIBLE_NAMES: Record<number, string> = {
  173: 'SOFT HYPHEN',
  1564: 'ARABIC LETTER MARK',
  8203: 'ZERO WIDTH SPACE',
  8204: 'ZERO WIDTH NON-JOINER',
  8205: 'ZERO WIDTH JOINER',
  8206: 'LEFT-TO-RIGHT MARK',
  8207: 'RIGHT-TO-LEFT MARK',
  8234: 'LEFT-TO-RIGHT EMBEDDING',
  8235: 'RIGHT-TO-LEFT EMBEDDING',
  8236: 'POP DIRECTIONAL FORMATTING',
  8237: 'LEFT-TO-RIGHT OVERRIDE',
  8238: 'RIGHT-TO-LEFT OVERRIDE',
  8288: 'WORD JOINER',
  8294: 'LEFT-TO-RIGHT ISOLATE',
  8295: 'RIGHT-TO-LEFT ISOLATE',
  8296: 'FIRST STRONG ISOLATE',
  8297: 'POP DIRECTIONAL ISOLATE',
  65279: 'ZERO WIDTH NO-BREAK SPACE',
};

/** Not format characters, but render as nothing. */
const FILLERS = new Set([0x034f, 0x115f, 0x1160, 0x17b4, 0x17b5, 0x180e, 0x3164, 0xffa0]);

/**
 * Bidi overrides and invisible characters make one name look like another (or reorder what an
 * operator reads): refused, naming the character and where it is (1-based, in code points).
 * Format characters (\p{Cf}) cover them all, plus fillers that render as nothing.
 */
export function invisibleCharacter(name: string): string | undefined {
  let position = 0;
  for (const char of name) {
    position++;
    const cp = char.codePointAt(0)!;
    if (/\p{Cf}/u.test(char) || FILLERS.has(cp)) {
      const hex = cp.toString(16).toUpperCase().padStart(4, '0');
      const label = INVISIBLE_NAMES[cp] ? ` (${INVISIBLE_NAMES[cp]})` : '';
      return `must not contain invisible or bidirectional-control characters: U+${hex}${label} at position ${position}`;
    }
  }
  return undefined;
}

/**
 * A name people read (a tenant's, an edge token's): trimmed, 1–200 characters, no control characters
 * and no invisible or bidirectional-control ones.
 */
export const DisplayName = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters')
  .superRefine((name, ctx) => {
    const problem = invisibleCharacter(name);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
