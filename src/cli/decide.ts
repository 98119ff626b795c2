/** `runbook approve` / `runbook reject`: a validated update, so a refusal is reported at once. */
import { WorkflowUpdateFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { decideUpdate, type DecideArgs } from '../messages.js';
import { describeError } from '../workflows/engine/errors.js';
import { ExitCode, UsageError } from './errors.js';
import { identity, type CommandContext } from './context.js';

export interface DecideOptions {
  checkpoint?: string;
  comment?: string;
  reason?: string;
  as?: string;
}

export async function decideCommand(ctx: CommandContext, workflowId: string, decision: DecideArgs['decision'], options: DecideOptions): Promise<number> {
  const by = identity(options.as);
  const args: DecideArgs =
    decision === 'approved'
      ? { decision, by, checkpoint: options.checkpoint, comment: options.comment }
      : { decision, by, checkpoint: options.checkpoint, reason: options.reason ?? '' };
  const client = await ctx.temporal();
  try {
    const recorded = await client.workflow.getHandle(workflowId).executeUpdate(decideUpdate, { args: [args] });
    if (ctx.json) console.log(JSON.stringify(recorded));
    else console.log(`${recorded.checkpoint} ${recorded.decision} by ${recorded.by} on ${workflowId}`);
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`no run with ID '${workflowId}'`);
    if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`refused: ${describeError(err)}`);
    // An update to a closed run fails with a gRPC error rather than an update failure.
    if (/completed|closed|not found/i.test((err as Error).message)) throw new UsageError(`refused: ${workflowId} has ended`);
    throw err;
  }
}
