import { z } from 'zod';
import { Timestamp } from '../../schemas';

/**
 * Caddy's `get_certificate http` appends `server_name`, `signature_schemes` and `cipher_suites` to the
 * configured URL (and may add more in later versions), so unknown parameters are accepted and ignored.
 */
export const TlsCertificateQuery = z.object({
  server_name: z.string().max(300).optional().describe('the SNI name of the handshake'),
  certificate_id: z
    .uuid()
    .optional()
    .describe('instead of server_name: this certificate, if it is current (used by certq-agent)'),
  token: z.string().max(512).optional().describe('the edge token, for clients that cannot send headers'),
  signature_schemes: z.string().max(2000).optional().describe('sent by Caddy; ignored'),
  cipher_suites: z.string().max(2000).optional().describe('sent by Caddy; ignored'),
});

export const ChangesQuery = z.strictObject({
  cursor: z
    .string()
    .regex(/^\d{1,16}$/, 'must be a cursor from a previous answer, or 0')
    .refine((c) => Number.isSafeInteger(Number(c)), 'must be a cursor from a previous answer, or 0')
    .optional()
    .describe('the nextCursor of a previous answer; absent or 0: from the beginning'),
  wait: z.coerce
    .number()
    .int()
    .min(0)
    .max(60)
    .optional()
    .describe('seconds to wait for the first change when there is none (≤ 60; default 0)'),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .describe('at most this many changes (default 500)'),
  token: z.string().max(512).optional().describe('not accepted here: send Authorization: Bearer'),
});

export const CertificateChangeSchema = z
  .object({
    cursor: z.string().describe('this change’s position; pass the answer’s nextCursor to continue'),
    certificateId: z.string(),
    tenantId: z.string(),
    domains: z.array(z.string()).describe('the certificate’s domains; the first names its files'),
    change: z
      .enum(['current', 'replaced'])
      .describe('current: now served for its domains; replaced: no longer (a renewal took its place)'),
    fingerprint: z.string().describe('SHA-256 of the leaf (DER), lowercase hex'),
    notAfter: Timestamp,
    at: Timestamp,
  })
  .meta({ id: 'CertificateChange' });

export const ChangesPageSchema = z.object({
  changes: z.array(CertificateChangeSchema),
  nextCursor: z.string(),
});
