/**
 * The workflow tier's worker: a real Worker in this process, on a task queue
 * of the test's own, running the real workflow bundle with stub activities.
 * Only the activities are stand-ins; the server, the worker and the client are real.
 */
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { ApprovalPolicy, RunbookInput, RunStatus } from '../../src/messages.js';
import { statusQuery } from '../../src/messages.js';
import { workflowTier } from '../workflows/setup.js';
import { waitUntil } from './wait-until.js';

export interface StubRun {
  client: Client;
  taskQueue: string;
  /** Starts a workflow of the bundle on this test's task queue, with a fresh workflow ID. */
  start<P>(workflowType: string, input: RunbookInput<P>): Promise<WorkflowHandle>;
}

let queues = 0;

/** Runs `body` while a worker with these activities serves a task queue of its own; stops the worker after. */
export async function withStubWorker<R>(activities: object, body: (run: StubRun) => Promise<R>): Promise<R> {
  const { env, workflowBundlePath } = workflowTier();
  const taskQueue = `workflow-tier-${process.pid}-${++queues}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: workflowBundlePath },
    activities,
  });
  const run: StubRun = {
    client: env.client,
    taskQueue,
    start: (workflowType, input) => startOn(env.client, taskQueue, workflowType, input),
  };
  return worker.runUntil(body(run));
}

/**
 * One worker for a whole `describe` (creating and stopping a worker costs
 * seconds; a workflow run here costs less): the activities named are
 * registered once and call whatever stubs the running test serves.
 */
export function useStubWorker(activityNames: string[]): { serve(activities: object): StubRun } {
  let current: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  const taskQueue = `workflow-tier-${process.pid}-${++queues}`;
  const dispatch = Object.fromEntries(
    activityNames.map((name) => [
      name,
      (...args: unknown[]) => {
        const stub = current[name];
        if (!stub) throw new Error(`this test serves no stub for activity ${name}`);
        return stub(...args);
      },
    ]),
  );

  before(async () => {
    const { env, workflowBundlePath } = workflowTier();
    worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: { codePath: workflowBundlePath }, activities: dispatch });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
  });

  return {
    serve(activities) {
      current = activities as typeof current;
      const { env } = workflowTier();
      return { client: env.client, taskQueue, start: (workflowType, input) => startOn(env.client, taskQueue, workflowType, input) };
    },
  };
}

function startOn<P>(client: Client, taskQueue: string, workflowType: string, input: RunbookInput<P>): Promise<WorkflowHandle> {
  return client.workflow.start(workflowType, { taskQueue, workflowId: `${input.runbook}:${input.env}:${input.target}:${randomUUID()}`, args: [input] });
}

export const anyoneMayApprove: ApprovalPolicy = { approvers: ['*'], allowSelfApproval: true, timeoutMs: 3_600_000 };

/** A workflow input as the CLI builds it. */
export function runbookInput<P>(runbook: string, params: P, overrides: Partial<Omit<RunbookInput<P>, 'params'>> = {}): RunbookInput<P> {
  return { runbook, env: 'test', target: 'one', startedBy: 'alice', dryRun: false, policy: anyoneMayApprove, params, ...overrides };
}

/** Polls the run's status query until the predicate holds. */
export async function statusWhen(handle: WorkflowHandle, predicate: (status: RunStatus) => boolean, timeoutMs = 20_000): Promise<RunStatus> {
  let seen: RunStatus | undefined;
  await waitUntil(
    async () => predicate((seen = await handle.query(statusQuery))),
    { timeoutMs, intervalMs: 50, what: () => `${handle.workflowId} to reach the state (last phase ${seen?.phase}, step ${seen?.currentStep})` },
  );
  return seen!;
}

/** How a run ended: its error's type and message, or its result. */
export async function outcome(handle: WorkflowHandle): Promise<{ result?: unknown; errorType?: string; message?: string }> {
  try {
    return { result: await handle.result() };
  } catch (err) {
    const cause = (err as { cause?: { type?: string; message?: string; name?: string } }).cause;
    return { errorType: cause?.type ?? cause?.name, message: cause?.message };
  }
}
