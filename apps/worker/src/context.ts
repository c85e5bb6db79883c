// placeholder: being written by the lead
import type { Clock, Config, SecretBox } from '@certq/core';
import type { Database } from '@certq/db';
import type { Logger } from 'pino';
import type { Queues } from './queues';

export interface WorkflowContext {
  db: Database;
  queues: Queues;
  secrets: SecretBox;
  config: Config;
  clock: Clock;
  logger: Logger;
}
export interface WorkflowContextOptions {
  db: Database;
  queues: Queues;
  secrets: SecretBox;
  config: Config;
  clock?: Clock;
  logger: Logger;
  redisUrl: string;
}
export function createWorkflowContext(_options: WorkflowContextOptions): WorkflowContext {
  throw new Error('not implemented yet');
}
