/** `runbook status`, `watch`, `ls` and `cancel`. */
import { cancelNoteSignal, searchAttributes, type Phase } from '../messages.js';
import { ExitCode } from './errors.js';
import { identity, type CommandContext } from './context.js';
import { formatStatus, LiveProgress, StepTicker, waitingLine } from './render.js';
import { exitCodeFor, followRun, readRun } from './run-status.js';

export async function statusCommand(ctx: CommandContext, workflowId: string): Promise<number> {
  const { status, note, progress } = await readRun(await ctx.temporal(), workflowId);
  // `progress` is added beside the status document's fields, and only while there is some.
  if (ctx.json) console.log(JSON.stringify(progress.length ? { ...status, progress } : status, null, 2));
  else {
    console.log(formatStatus(status, note, progress));
    console.log(`  UI: ${ctx.runUrl(workflowId)}`);
  }
  return ExitCode.ok;
}

export async function watchCommand(ctx: CommandContext, workflowId: string): Promise<number> {
  const live = new LiveProgress({ tty: Boolean(process.stdout.isTTY), write: (line) => console.log(line) });
  const ticker = new StepTicker((line) => live.print(line));
  const view = await followRun(await ctx.temporal(), workflowId, {
    stopAtCheckpoint: true,
    onStatus: (status, { progress }) => {
      if (ctx.json) return console.log(JSON.stringify(progress.length ? { ...status, progress } : status));
      ticker.update(status);
      live.update(status, progress);
    },
  }).finally(() => live.stop());
  if (!ctx.json && view.status.waitingFor) console.log(waitingLine(view.status));
  if (!ctx.json && view.note) console.log(`note: ${view.note}`);
  return exitCodeFor(view.status);
}

export interface ListOptions {
  env?: string;
  runbook?: string;
  running?: boolean;
  limit?: string;
}

export async function lsCommand(ctx: CommandContext, options: ListOptions): Promise<number> {
  const clauses = [`${searchAttributes.runbook.name} IS NOT NULL`];
  if (options.env) clauses.push(`${searchAttributes.env.name} = ${quote(options.env)}`);
  if (options.runbook) clauses.push(`${searchAttributes.runbook.name} = ${quote(options.runbook)}`);
  if (options.running) clauses.push(`ExecutionStatus = 'Running'`);
  const limit = Number(options.limit ?? 20);
  const client = await ctx.temporal();
  const rows: {
    workflowId: string;
    runId: string;
    runbook?: string;
    env?: string;
    phase?: Phase;
    status: string;
    startedBy?: string;
    startTime: string;
  }[] = [];
  for await (const run of client.workflow.list({ query: clauses.join(' AND ') })) {
    const sa = run.typedSearchAttributes;
    rows.push({
      workflowId: run.workflowId,
      runId: run.runId,
      runbook: sa.get(searchAttributes.runbook),
      env: sa.get(searchAttributes.env),
      phase: sa.get(searchAttributes.phase) as Phase | undefined,
      status: run.status.name,
      startedBy: sa.get(searchAttributes.startedBy),
      startTime: run.startTime.toISOString(),
    });
    if (rows.length >= limit) break;
  }
  rows.sort((a, b) => b.startTime.localeCompare(a.startTime));
  if (ctx.json) console.log(JSON.stringify(rows, null, 2));
  else if (!rows.length) console.log('no runs');
  else {
    const width = Math.max(...rows.map((r) => r.workflowId.length));
    for (const r of rows)
      console.log(`${r.workflowId.padEnd(width)}  ${(r.phase ?? r.status.toLowerCase()).padEnd(11)}  ${r.startTime}  ${r.startedBy ?? ''}`);
  }
  return ExitCode.ok;
}

export async function cancelCommand(
  ctx: CommandContext,
  workflowId: string,
  options: { wait?: boolean; as?: string; reason?: string },
): Promise<number> {
  const client = await ctx.temporal();
  await readRun(client, workflowId); // a clear error for an unknown ID
  const handle = client.workflow.getHandle(workflowId);
  // A cancellation carries no payload the workflow can read: the note before it records who asked, and why.
  await handle.signal(cancelNoteSignal, { by: identity(options.as), ...(options.reason ? { reason: options.reason } : {}) });
  await handle.cancel();
  if (!options.wait) {
    console.log(`cancel requested for ${workflowId}; compensation runs next (follow with \`runbook watch ${workflowId}\`)`);
    return ExitCode.ok;
  }
  const view = await followRun(client, workflowId, { stopAtCheckpoint: false });
  console.log(ctx.json ? JSON.stringify(view.status) : formatStatus(view.status, view.note));
  return view.status.phase === 'cancelled' ? ExitCode.ok : exitCodeFor(view.status);
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "\\'")}'`;
}
