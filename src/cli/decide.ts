/**
 * `runbook approve` / `runbook reject`. The decision is bound to one wait of
 * one run: it names the checkpoint, the wait ID and the run ID it was read
 * from, so a decision cannot slide onto the next checkpoint. The rule is
 * checked here first against the live status (the function the workflow uses),
 * so most refusals are reported before anything is sent; then the signal goes
 * once, with a request ID, and the command waits until the run has recorded it
 * as a decision or a refusal. It never re-sends.
 *
 * Where the run's environment lists signers, the decision is signed (see
 * src/signing/) and the worker's verified principal is who decided.
 */
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import { approveSignal, rejectSignal, type DecideArgs, type RunStatus } from '../messages.js';
import { decisionMessage } from '../signing/canonical.js';
import { expiresAt, findSigningKey, signMessage } from '../signing/sign.js';
import { refusalReason, type ApprovalState } from '../workflows/engine/approvals.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { identity, type CommandContext } from './context.js';
import { readRun } from './run-status.js';

export interface DecideOptions {
  checkpoint?: string;
  comment?: string;
  reason?: string;
  as?: string;
  /** Private key to sign with (else RUNBOOK_SIGNING_KEY, else the first key in ssh-agent). */
  key?: string;
  /** Skip the confirmation on a terminal. */
  yes?: boolean;
}

/** After this the command says it is still waiting; it keeps polling until the run records the request or ends. */
const CONFIRM_NOTICE_MS = 30_000;
const CONFIRM_GIVE_UP_MS = 10 * 60_000;

export async function decideCommand(
  ctx: CommandContext,
  workflowId: string,
  decision: DecideArgs['decision'],
  options: DecideOptions,
): Promise<number> {
  const client = await ctx.temporal();
  const { status, execution, note } = await readRun(client, workflowId);
  if (execution.status.name !== 'RUNNING') throw new UsageError(`refused: ${whyEnded(status, options.checkpoint)}`);
  if (note) throw new CliError(`cannot read the run's status, so the decision was not sent: ${note}`, ExitCode.runFailed);

  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const checkpoint = options.checkpoint ?? (interactive ? status.waitingFor?.checkpoint : undefined);
  if (!checkpoint) {
    const where = status.waitingFor ? `the run waits at '${status.waitingFor.checkpoint}'` : 'the run waits at no checkpoint';
    throw new UsageError(`refused: without a terminal to confirm on, name the checkpoint you decide with --checkpoint (${where})`);
  }
  const signed = Boolean(status.policy?.signed);
  // Signed, the key says who decides: a name is sent only when given with --as, and must then be the key's.
  const by = signed ? (options.as ?? '') : identity(options.as);
  const binding = { checkpoint, waitId: status.waitingFor?.waitId, runId: execution.runId, by, requestId: randomUUID() };
  const args: DecideArgs =
    decision === 'approved' ? { decision, ...binding, comment: options.comment } : { decision, ...binding, reason: options.reason ?? '' };

  const state: ApprovalState = {
    env: status.env,
    startedBy: status.startedBy,
    runId: execution.runId,
    waitingFor: status.waitingFor,
    pending: null,
    decisions: status.decisions,
  };
  // Without a name, only what does not depend on who decides can be checked here; the worker checks the rest.
  const refused = by
    ? refusalReason(state, args)
    : refusalReason(
        { ...state, waitingFor: state.waitingFor && { ...state.waitingFor, approvers: ['*'], allowSelfApproval: true } },
        { ...args, by: 'signer' },
      );
  if (refused) throw new UsageError(`refused: ${refused}`);
  if (signed) await sign(status.env, args, workflowId, options.key);
  if (interactive && !options.yes && !(await confirm(status, args))) {
    console.error('nothing sent');
    return ExitCode.usage;
  }

  const handle = client.workflow.getHandle(workflowId, execution.runId);
  if (args.decision === 'approved') {
    const { decision: _decision, ...approval } = args;
    await handle.signal(approveSignal, approval);
  } else {
    const { decision: _decision, ...rejection } = args;
    await handle.signal(rejectSignal, rejection);
  }

  const outcome = await awaitOutcome(ctx, workflowId, args.requestId!);
  if ('reason' in outcome) throw new UsageError(`refused: ${outcome.reason}`);
  if (ctx.json) console.log(JSON.stringify(outcome));
  else console.log(`${outcome.checkpoint} ${outcome.decision} by ${outcome.by} on ${workflowId}`);
  return ExitCode.ok;
}

/** Signs the decision over the wait it was read from (the worker checks it against its own signers file). */
async function sign(env: string, args: DecideArgs, workflowId: string, keyFlag: string | undefined): Promise<void> {
  const key = await findSigningKey(keyFlag);
  if (!key)
    throw new UsageError(
      `refused: ${env} requires signed decisions: pass --key <private key file>, set RUNBOOK_SIGNING_KEY, or load a key into ssh-agent`,
    );
  args.expiresAt = expiresAt();
  const comment = args.decision === 'approved' ? args.comment : args.reason;
  args.signature = await signMessage(
    key,
    decisionMessage({ workflowId, runId: args.runId!, waitId: args.waitId!, decision: args.decision, comment, expiresAt: args.expiresAt }),
  );
}

/** Shows what is being decided, as the run states it, and asks. */
async function confirm(status: RunStatus, args: DecideArgs): Promise<boolean> {
  const w = status.waitingFor!;
  const verb = args.decision === 'approved' ? 'Approve' : 'Reject';
  console.log(
    [
      `${status.runbook} on ${status.env}, target ${status.target}, started by ${status.startedBy}`,
      `  run:        ${status.workflowId} (${args.runId})`,
      `  checkpoint: ${w.checkpoint} (wait ${w.waitId}), waiting since ${w.since}, rejects itself at ${w.timeoutAt}`,
      `  prompt:     ${w.prompt}`,
      `  approvers:  ${w.approvers.join(', ')}${w.allowSelfApproval ? ' (self-approval allowed)' : ''}`,
      `  you:        ${args.by || '(the signing key decides)'}`,
    ].join('\n'),
  );
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(`${verb} '${w.checkpoint}'? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Polls the status until the run has recorded this request, as a decision or as a refusal. Never re-sends. */
async function awaitOutcome(ctx: CommandContext, workflowId: string, requestId: string) {
  const client = await ctx.temporal();
  const started = Date.now();
  let told = false;
  for (;;) {
    const { status, execution } = await readRun(client, workflowId);
    const outcome = status.decisions.find((d) => d.requestId === requestId) ?? status.refusals.find((r) => r.requestId === requestId);
    if (outcome) return outcome;
    if (execution.status.name !== 'RUNNING') {
      throw new CliError(
        `${workflowId} ended (${status.phase}) without recording request ${requestId}; see \`runbook status ${workflowId}\``,
        ExitCode.runFailed,
      );
    }
    if (!told && Date.now() - started > CONFIRM_NOTICE_MS) {
      told = true;
      console.error(
        `the decision was sent (request ${requestId}) but ${workflowId} has not recorded it yet (is a worker running?); still waiting — do not send it again`,
      );
    }
    if (Date.now() - started > CONFIRM_GIVE_UP_MS) {
      throw new CliError(
        `the decision was sent (request ${requestId}) but ${workflowId} has not recorded it within ${CONFIRM_GIVE_UP_MS / 60_000} minutes; it will be applied when a worker picks it up — check \`runbook status ${workflowId}\` instead of sending it again`,
        ExitCode.runFailed,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function whyEnded(status: RunStatus, checkpoint: string | undefined): string {
  const decided = [...status.decisions].reverse().find((d) => !checkpoint || d.checkpoint === checkpoint);
  const already = decided ? `; checkpoint '${decided.checkpoint}' was already ${decided.decision} by ${decided.by} at ${decided.at}` : '';
  return `${status.workflowId} has ended (${status.phase})${already}`;
}
