import type { Stage, StageJob } from '@certq/core';
import type { WorkerContext } from '../context';
import { applyTask } from './apply';
import type { Outcome } from './outcome';
import { pollTask } from './poll';
import { verifyTask } from './verify';

/** A task: gets its job's payload and the worker's helpers, does one stage's step, returns an Outcome. */
export type Task = (ctx: WorkerContext, job: StageJob) => Promise<Outcome>;

/** The only place that knows which task serves which stage. */
export const TASKS: Readonly<Record<Stage, Task>> = { verify: verifyTask, apply: applyTask, poll: pollTask };
