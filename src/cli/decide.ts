/**
 * `runbook approve` / `runbook reject`. The rule is checked here first against
 * the live status (same function the workflow uses), so most refusals are
 * reported before anything is sent; then the signal goes with a request ID and
 * the command waits until the run has recorded it as a decision or a refusal.
 */
import { randomUUID } from 'node:crypto';
import { approveSignal, rejectSignal, type DecideArgs, type RunStatus } from '../messages.js';
import { refusalReason } from '../workflows/engine/approvals.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { identity, type CommandContext } from './context.js';
import { readRun } from './run-status.js';

export interface DecideOptions {
  checkpoint?: string;
  comment?: string;
  reason?: string;
  as?: string;
}

const CONFIRM_TIMEOUT_MS = 30_000;

export async function decideCommand(ctx: CommandContext, workflowId: string, decision: DecideArgs['decision'], options: DecideOptions): Promise<number> {
  const requestId = randomUUID();
  const by = identity(options.as);
  const args: DecideArgs =
    decision === 'approved'
      ? { decision, by, checkpoint: options.checkpoint, comment: options.comment, requestId }
      : { decision, by, checkpoint: options.checkpoint, reason: options.reason ?? '', requestId };

  const client = await ctx.temporal();
  const { status, execution, note } = await readRun(client, workflowId);
  if (execution.status.name !== 'RUNNING') throw new UsageError(`refused: ${whyEnded(status, options.checkpoint)}`);
  if (note) throw new CliError(`cannot read the run's status, so the decision was not sent: ${note}`, ExitCode.runFailed);
  const refused = refusalReason({ env: status.env, startedBy: status.startedBy, waitingFor: status.waitingFor, pending: null, decisions: status.decisions }, args);
  if (refused) throw new UsageError(`refused: ${refused}`);

  const handle = client.workflow.getHandle(workflowId);
  if (args.decision === 'approved') await handle.signal(approveSignal, { checkpoint: args.checkpoint, by, comment: args.comment, requestId });
  else await handle.signal(rejectSignal, { checkpoint: args.checkpoint, by, reason: args.reason, requestId });

  const outcome = await awaitOutcome(ctx, workflowId, requestId);
  if ('reason' in outcome) throw new UsageError(`refused: ${outcome.reason}`);
  if (ctx.json) console.log(JSON.stringify(outcome));
  else console.log(`${outcome.checkpoint} ${outcome.decision} by ${outcome.by} on ${workflowId}`);
  return ExitCode.ok;
}

/** Polls the status until the run has recorded this request, as a decision or as a refusal. */
async function awaitOutcome(ctx: CommandContext, workflowId: string, requestId: string) {
  const client = await ctx.temporal();
  const deadline = Date.now() + CONFIRM_TIMEOUT_MS;
  for (;;) {
    const { status } = await readRun(client, workflowId);
    const outcome = status.decisions.find((d) => d.requestId === requestId) ?? status.refusals.find((r) => r.requestId === requestId);
    if (outcome) return outcome;
    if (Date.now() > deadline) {
      throw new CliError(`the decision was sent but ${workflowId} has not recorded it within ${CONFIRM_TIMEOUT_MS / 1000}s; check \`runbook status ${workflowId}\``, ExitCode.runFailed);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function whyEnded(status: RunStatus, checkpoint: string | undefined): string {
  const decided = [...status.decisions].reverse().find((d) => !checkpoint || d.checkpoint === checkpoint);
  const already = decided ? `; checkpoint '${decided.checkpoint}' was already ${decided.decision} by ${decided.by} at ${decided.at}` : '';
  return `${status.workflowId} has ended (${status.phase})${already}`;
}
