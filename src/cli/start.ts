/** `runbook start`: validate everything, take the target's lock by starting the run, report. */
import { readFileSync } from 'node:fs';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { buildStartRequest } from '../catalog/inputs.js';
import { environment } from '../config.js';
import { startMessage } from '../signing/canonical.js';
import { expiresAt, findSigningKey, signMessage } from '../signing/sign.js';
import { TASK_QUEUE, searchAttributes, type RunStatus } from '../messages.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { identity, type CommandContext } from './context.js';
import { StepTicker, waitingLine } from './render.js';
import { countPollers, exitCodeFor, followRun, noWorkerHint, readRun } from './run-status.js';

export interface StartOptions {
  env: string;
  set?: string[];
  input?: string;
  dryRun?: boolean;
  wait?: boolean;
  as?: string;
  /** Private key to sign the start with (else RUNBOOK_SIGNING_KEY, else the first key in ssh-agent). */
  key?: string;
}

export async function startCommand(ctx: CommandContext, runbookName: string, options: StartOptions): Promise<number> {
  const definition = (await ctx.catalog()).get(runbookName);
  const env = environment(ctx.requireConfig(), options.env);
  const request = buildStartRequest(
    definition,
    env,
    { file: readInputFile(options.input), sets: options.set },
    {
      startedBy: identity(options.as),
      dryRun: Boolean(options.dryRun),
    },
  );
  if (env.approvals.signers) {
    // Signed over exactly what the worker will check: the params as sent, this request, a near expiry.
    const key = await findSigningKey(options.key);
    if (!key)
      throw new UsageError(
        `${env.name} requires signed starts: pass --key <private key file>, set RUNBOOK_SIGNING_KEY, or load a key into ssh-agent`,
      );
    const input = request.input;
    input.expiresAt = expiresAt();
    input.signature = await signMessage(
      key,
      startMessage({
        runbook: input.runbook,
        env: input.env,
        params: input.params,
        requestId: input.requestId,
        expiresAt: input.expiresAt,
      }),
    );
  }

  const client = await ctx.temporal();
  const pollers = await countPollers(client);
  if (pollers === 0) console.error(`warning: ${noWorkerHint()}; the run will wait for one`);

  let runId: string;
  try {
    const handle = await client.workflow.start(request.workflowType, {
      workflowId: request.workflowId,
      taskQueue: TASK_QUEUE,
      args: [request.input],
      // The workflow ID is the lock on the target: a second run on it is refused while the first is open.
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      staticSummary: request.summary,
      staticDetails: `runbook ${definition.name} on ${env.name}, started by ${request.input.startedBy}`,
      typedSearchAttributes: [
        { key: searchAttributes.runbook, value: definition.name },
        { key: searchAttributes.env, value: env.name },
        { key: searchAttributes.target, value: request.target },
        { key: searchAttributes.startedBy, value: request.input.startedBy },
        { key: searchAttributes.phase, value: 'running' },
      ],
    });
    runId = handle.firstExecutionRunId;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw await conflict(ctx, request.workflowId);
    throw err;
  }

  const url = ctx.runUrl(request.workflowId);
  if (!ctx.json) {
    console.log(`Started ${definition.name} on ${env.name}${options.dryRun ? ' (dry run)' : ''}: ${request.workflowId}`);
    console.log(`  UI:     ${url}`);
    console.log(`  status: runbook status ${request.workflowId}`);
  }
  if (pollers === 0 && !options.wait) {
    if (ctx.json) console.log(JSON.stringify({ workflowId: request.workflowId, runId, uiUrl: url, status: null }));
    return ExitCode.ok;
  }

  // Even without --wait, stay until preflight has judged the inputs, so a refused input is reported here (exit 2).
  const ticker = new StepTicker((line) => !ctx.json && console.log(line));
  const firstStep = definition.plan.steps[0];
  const view = await followRun(client, request.workflowId, {
    stopAtCheckpoint: true,
    onStatus: (status) => ticker.update(status),
    until: options.wait ? undefined : (status) => isSettled(status, firstStep),
  });
  const { status } = view;
  if (ctx.json) console.log(JSON.stringify({ workflowId: request.workflowId, runId, uiUrl: url, status }));
  else if (status.phase === 'waiting') console.log(waitingLine(status));
  else if (view.note) console.log(`note: ${view.note}`);
  if (status.errorType === 'InvalidInput') return ExitCode.usage;
  if (status.errorType === 'Conflict') {
    if (!ctx.json) console.error(`runbook: ${status.error}`);
    return ExitCode.conflict;
  }
  return options.wait ? exitCodeFor(status) : ExitCode.ok;
}

function isSettled(status: RunStatus, firstStep: string | undefined): boolean {
  const first = status.steps.find((s) => s.name === firstStep);
  return !first || (first.status !== 'pending' && first.status !== 'running');
}

function readInputFile(path: string | undefined): Record<string, unknown> | undefined {
  if (!path) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`--input ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(`--input ${path}: expected a JSON object`);
  return parsed as Record<string, unknown>;
}

async function conflict(ctx: CommandContext, workflowId: string): Promise<CliError> {
  const holder = await readRun(await ctx.temporal(), workflowId).catch(() => undefined);
  const status = holder?.status;
  const where = status?.waitingFor
    ? `waiting at checkpoint '${status.waitingFor.checkpoint}'`
    : status?.currentStep
      ? `at step '${status.currentStep}'`
      : (status?.phase ?? 'running');
  const who = status?.startedBy ? `, started by ${status.startedBy}` : '';
  const run = holder?.execution.runId ? ` (run ${holder.execution.runId})` : '';
  return new CliError(
    `${workflowId} is held by a run in progress${run}${who}, ${where}; see \`runbook status ${workflowId}\` or ${ctx.runUrl(workflowId)}`,
    ExitCode.conflict,
  );
}
