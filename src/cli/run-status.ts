/** Reading a run's status: the live query while it runs, the final memo once it ended. */
import { Client, Connection, WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { FINAL_STATUS_MEMO, TASK_QUEUE, searchAttributes, statusQuery, type Phase, type RunStatus } from '../messages.js';
import { UsageError } from './errors.js';
import { progressOf, type ActivityProgress } from './progress.js';

/** `temporal.api.enums.v1.TaskQueueType` values (the proto package is not a direct dependency). */
const TASK_QUEUE_TYPE = { workflow: 1, activity: 2 } as const;

/** How long a status query may keep failing while workers poll (a replaced worker takes ~10 s to be asked). */
const QUERY_PATIENCE_MS = 30_000;

export const TERMINAL_PHASES: readonly Phase[] = ['succeeded', 'failed', 'cancelled', 'rolled-back'];

export interface RunView {
  status: RunStatus;
  execution: WorkflowExecutionDescription;
  /** Why the status is incomplete (e.g. no worker to answer the query). */
  note?: string;
  /** What the running step's activities last heartbeated about their progress. */
  progress: ActivityProgress[];
}

export async function readRun(client: Client, workflowId: string): Promise<RunView> {
  const handle = client.workflow.getHandle(workflowId);
  let execution: WorkflowExecutionDescription;
  try {
    execution = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`no run with ID '${workflowId}' (list runs with \`runbook ls\`)`);
    throw err;
  }
  const final = execution.memo?.[FINAL_STATUS_MEMO] as RunStatus | undefined;
  if (final && execution.status.name !== 'RUNNING') return { status: final, execution, progress: [] };
  return { ...(await queryWithPatience(client, workflowId, execution)), progress: progressOf(execution) };
}

/**
 * Asks the run for its status. Just after a worker dies, queries fail until the
 * server stops routing them to the dead worker (about ten seconds), so while
 * any worker polls, failures are retried for a while before giving up.
 */
async function queryWithPatience(
  client: Client,
  workflowId: string,
  execution: WorkflowExecutionDescription,
): Promise<Omit<RunView, 'progress'>> {
  const handle = client.workflow.getHandle(workflowId);
  const giveUpAt = Date.now() + QUERY_PATIENCE_MS;
  for (;;) {
    try {
      const status = await client.withDeadline(Date.now() + 8000, () => handle.query(statusQuery));
      return { status, execution };
    } catch (err) {
      const pollers = await countPollers(client);
      if (pollers === 0 || Date.now() > giveUpAt) {
        const note = pollers === 0 ? noWorkerHint() : `status query failed: ${(err as Error).message}`;
        return { status: statusFromDescription(execution), execution, note };
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** A status built from visibility alone, for when no worker can answer the query. */
function statusFromDescription(execution: WorkflowExecutionDescription): RunStatus {
  const sa = execution.typedSearchAttributes;
  const closed: Record<string, Phase> = {
    COMPLETED: 'succeeded',
    FAILED: 'failed',
    CANCELLED: 'cancelled',
    TERMINATED: 'failed',
    TIMED_OUT: 'failed',
  };
  return {
    workflowId: execution.workflowId,
    runbook: sa.get(searchAttributes.runbook) ?? execution.type,
    env: sa.get(searchAttributes.env) ?? '?',
    target: sa.get(searchAttributes.target) ?? '?',
    phase: closed[execution.status.name] ?? (sa.get(searchAttributes.phase) as Phase | undefined) ?? 'running',
    dryRun: false,
    startedBy: sa.get(searchAttributes.startedBy) ?? '?',
    currentStep: null,
    steps: [],
    waitingFor: null,
    decisions: [],
    refusals: [],
    refusalsDropped: 0,
    policy: null,
    envHash: null,
    cancelledBy: null,
    notifications: { sent: 0, failed: [] },
    error: execution.status.name === 'TERMINATED' ? 'terminated' : null,
    errorType: null,
    result: null,
  };
}

export async function countPollers(client: Client): Promise<number> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: TASK_QUEUE },
  });
  return response.pollers?.length ?? 0;
}

export function noWorkerHint(): string {
  return `no worker is polling task queue '${TASK_QUEUE}': start one with \`runbook worker\` (or \`npm start\` for the local stack)`;
}

export interface WaitOptions {
  /** Stop at a waiting checkpoint too, not only at the end. */
  stopAtCheckpoint: boolean;
  onStatus?: (status: RunStatus, view: RunView) => void;
  /** Stop early when this returns true. */
  until?: (status: RunStatus) => boolean;
  intervalMs?: number;
}

/** Follows a run until it ends (or waits at a checkpoint), reporting each status it sees. */
export async function followRun(client: Client, workflowId: string, options: WaitOptions): Promise<RunView> {
  const interval = options.intervalMs ?? 1000;
  for (;;) {
    const view = await readRun(client, workflowId);
    options.onStatus?.(view.status, view);
    const { phase } = view.status;
    if (TERMINAL_PHASES.includes(phase) && view.execution.status.name !== 'RUNNING') return view;
    if (options.stopAtCheckpoint && phase === 'waiting') return view;
    if (options.until?.(view.status)) return view;
    if (view.note && view.execution.status.name !== 'RUNNING') return view;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** The exit code a waited-for run earns: 0 succeeded or waiting, 2 refused in preflight, 1 any other end. */
export function exitCodeFor(status: RunStatus): number {
  if (status.phase === 'succeeded' || status.phase === 'waiting' || status.phase === 'running') return 0;
  if (status.errorType === 'InvalidInput') return 2;
  if (status.errorType === 'Conflict') return 3;
  return 1;
}

/**
 * Resolves once the server has seen the worker with this identity poll the
 * runbooks task queue for both workflow and activity tasks: from then on a run
 * started there is picked up.
 */
export async function waitUntilPolling(address: string, identity: string, signal: AbortSignal, timeoutMs = 60_000): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal.throwIfAborted();
      const kinds = await Promise.all([TASK_QUEUE_TYPE.workflow, TASK_QUEUE_TYPE.activity].map((type) => pollerIdentities(client, type)));
      if (kinds.every((identities) => identities.includes(identity))) return;
      if (Date.now() > deadline) throw new Error(`no poll from ${identity} on task queue '${TASK_QUEUE}' within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await connection.close();
  }
}

async function pollerIdentities(client: Client, taskQueueType: number): Promise<string[]> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: TASK_QUEUE },
    taskQueueType,
  });
  return (response.pollers ?? []).map((poller) => poller.identity ?? '');
}
