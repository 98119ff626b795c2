/**
 * The workflow tier's worker: a real Worker in this process, on a task queue
 * of the test's own, running the real workflow bundle with stub activities.
 * Only the activities are stand-ins; the server, the worker and the client are real.
 */
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { ResolvedRun, RunPolicy, RunbookInput, RunStatus } from '../../src/messages.js';
import { statusQuery } from '../../src/messages.js';
import { workflowTier } from '../workflows/setup.js';
import { waitUntil } from './wait-until.js';

export interface StubRun {
  client: Client;
  taskQueue: string;
  /** Starts a workflow of the bundle on this test's task queue, with a fresh workflow ID. */
  start(workflowType: string, input: RunbookInput): Promise<WorkflowHandle>;
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
    activities: { resolveRun: resolveAsGiven, ...activities },
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
    [...new Set(['resolveRun', ...activityNames])].map((name) => [
      name,
      (...args: unknown[]) => {
        const stub = current[name] ?? (name === 'resolveRun' ? resolveAsGiven : undefined);
        if (!stub) throw new Error(`this test serves no stub for activity ${name}`);
        return stub(...args);
      },
    ]),
  );

  before(async () => {
    const { env, workflowBundlePath } = workflowTier();
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: { codePath: workflowBundlePath },
      activities: dispatch,
    });
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

function startOn(client: Client, taskQueue: string, workflowType: string, input: RunbookInput): Promise<WorkflowHandle> {
  return client.workflow.start(workflowType, { taskQueue, workflowId: `${input.runbook}:${input.env}:one:${randomUUID()}`, args: [input] });
}

export const anyoneMayApprove: RunPolicy = {
  approvers: ['*'],
  allowSelfApproval: true,
  protected: false,
  timeoutMs: 3_600_000,
  timeoutsMs: {},
  notify: false,
  notifications: [],
};

/** The policy each stub run resolves to, by request ID (the real worker reads it from its config). */
const policies = new Map<string, RunPolicy>();
/** The services each stub run says it changes, by request ID. */
const services = new Map<string, string[]>();

/**
 * The worker's resolve step, stubbed: the params a test gives are taken as
 * already prepared, and the policy is the one the test asked for. The real
 * step is tested end to end (test/trust-boundary.test.ts).
 */
async function resolveAsGiven({ input }: { workflowId: string; input: RunbookInput }): Promise<ResolvedRun> {
  return {
    target: 'one',
    params: input.params,
    policy: policies.get(input.requestId) ?? anyoneMayApprove,
    envHash: 'stub',
    services: services.get(input.requestId) ?? [],
    startedBy: input.startedBy,
  };
}

type PolicyOverride = Partial<Omit<RunPolicy, 'timeoutsMs'>> & { timeoutsMs?: Record<string, number> };

/** A workflow input as the CLI builds it, with the policy the stub resolve step hands back. */
export function runbookInput<P>(
  runbook: string,
  params: P,
  overrides: Partial<Omit<RunbookInput, 'params'>> & { policy?: PolicyOverride; services?: string[] } = {},
): RunbookInput {
  const { policy, services: changed, ...rest } = overrides;
  const requestId = randomUUID();
  if (policy) policies.set(requestId, { ...anyoneMayApprove, ...policy });
  if (changed) services.set(requestId, changed);
  return { runbook, env: 'test', startedBy: 'alice', dryRun: false, requestId, params: params as Record<string, unknown>, ...rest };
}

/** Polls the run's status query until the predicate holds. */
export async function statusWhen(
  handle: WorkflowHandle,
  predicate: (status: RunStatus) => boolean,
  timeoutMs = 20_000,
): Promise<RunStatus> {
  let seen: RunStatus | undefined;
  await waitUntil(async () => predicate((seen = await handle.query(statusQuery))), {
    timeoutMs,
    intervalMs: 50,
    what: () => `${handle.workflowId} to reach the state (last phase ${seen?.phase}, step ${seen?.currentStep})`,
  });
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
