// placeholder: being written by the lead
import type { WorkflowContext } from './context';
export type CallbackResult = { status: 'unknown' } | { status: 'accepted'; orderId: string };
export async function receiveCallback(_ctx: WorkflowContext, _secret: string, _body: unknown): Promise<CallbackResult> {
  throw new Error('not implemented yet');
}
