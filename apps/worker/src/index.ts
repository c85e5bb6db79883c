export { createQueues, enqueueOrders, type Queues, STAGE_JOB_OPTIONS, stageJobFor } from './queues';
export { createWorkflowContext, type WorkflowContext, type WorkflowContextOptions } from './context';
export { receiveCallback, type CallbackResult } from './callback';
