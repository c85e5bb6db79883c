import { ALGORITHMS, CERTIFICATE_AUTHORITIES } from '@certq/core';
import { z } from 'zod';

/** Path `{id}`: a UUID; anything else answers 404 like an unknown id (see plugins/errors.ts). */
export const IdParams = z.strictObject({ id: z.uuid().describe('UUID') });

export const AlgorithmSchema = z.enum(ALGORITHMS);
export const CaSchema = z.enum(CERTIFICATE_AUTHORITIES);

/** A timestamp as the API shows it. */
export const Timestamp = z.string().describe('ISO-8601 timestamp');
