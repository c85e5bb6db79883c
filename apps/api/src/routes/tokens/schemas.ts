import { z } from 'zod';

/** How long a rotated-out token keeps working by default: a day, time to roll the new one out. */
export const DEFAULT_GRACE_SECONDS = 86_400;
export const MAX_GRACE_SECONDS = 7 * 86_400;

export const RotateInputSchema = z
  .strictObject({
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_GRACE_SECONDS)
      .default(DEFAULT_GRACE_SECONDS)
      .describe('how long the old token stays valid (0–604800 s, default 86400); 0 refuses it at once'),
  })
  .optional();

export const RotatedTokenSchema = z
  .object({
    token: z.string().describe('the new bearer token, shown once'),
    previousTokenValidUntil: z
      .string()
      .nullable()
      .describe('until when the old token is still accepted (null: not at all, e.g. after a revocation)'),
  })
  .meta({ id: 'RotatedToken' });
