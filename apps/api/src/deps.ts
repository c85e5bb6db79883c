import type { Config, ResolveAll, SecretBox } from '@certq/core';
import type { Database } from '@certq/db';
import type { OwnershipProofs, Queues } from '@certq/workflow';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Everything the API needs from outside; `startApi` (server.ts) builds these for production. */
export interface ApiDeps {
  db: Database;
  /** For rate limiting and readiness. Best configured to fail fast (see server.ts). */
  redis: Redis;
  /** Producer side only: the API queues jobs, the worker runs them. */
  queues: Queues;
  secrets: SecretBox;
  config: Config;
  /** A pino logger, `false` for none; default: pino at `config.LOG_LEVEL`. */
  logger?: Logger | false;
  /** How long an order request waits for Redis to take its jobs before answering anyway (default 2000). */
  enqueueTimeoutMs?: number;
  /** How webhook host names resolve when a tenant sets one (default: the system resolver; tests replace it). */
  resolveAll?: ResolveAll;
  /** How a tenant proves a domain another tenant holds (default: from ENCRYPTION_KEY and DNS_RESOLVERS). */
  ownership?: OwnershipProofs;
}

/** What every route plugin receives. */
export interface RouteOptions extends Record<string, unknown> {
  deps: ApiDeps;
}
