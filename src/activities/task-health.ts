/**
 * Waiting for a service's new tasks to serve: RUNNING in ECS and healthy in
 * the target group. One long activity that polls with backoff and heartbeats
 * its small progress, so a 45-minute wait costs the workflow history a few
 * events, and a new worker resumes the wait where the old one was.
 */
import type { ECSClient } from '@aws-sdk/client-ecs';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { clientFactory, type AwsConnection, type AwsDeps } from './aws.js';
import { describeTasks, isWanted, listServiceTasks, type ServiceTask } from './ecs.js';
import { readTargetHealth, type TargetState } from './elb.js';
import { shortArn } from '../format.js';
import type { HeartbeatProgress } from '../progress.js';

export interface NewTasksWait {
  aws: AwsConnection;
  cluster: string;
  service: string;
  targetGroupArn: string;
  /** The tasks that ran before the run began; every other task of the service is new. */
  oldTaskArns: string[];
  /** How many new tasks must be healthy. */
  count: number;
  /** ISO time after which the wait gives up (fixed by the workflow, so a retried attempt keeps it). */
  deadline: string;
  /** New tasks that may fail (stop, or turn unhealthy) before the rollout is judged bad. */
  toleratedFailures: number;
}

export interface TaskFailure {
  arn: string;
  why: string;
}

/** What the wait has learned so far; heartbeated, and where a retried attempt resumes. */
export interface WaitProgress {
  /** The new tasks seen that ECS still runs, healthy or not. */
  newTaskArns: string[];
  failures: TaskFailure[];
  polls: number;
  delayMs: number;
}

export interface HealthyNewTasks {
  /** The new tasks healthy in the target group, oldest first. */
  newTaskArns: string[];
  /** Transient failures tolerated on the way. */
  failures: TaskFailure[];
  polls: number;
}

/** What the wait heartbeats: where a retried attempt resumes, and how far it got for `runbook watch` and `status`. */
export type WaitHeartbeat = WaitProgress & { progress: HeartbeatProgress };

/** How a poll judges the new tasks. */
export interface Assessment {
  progress: WaitProgress;
  healthy: ServiceTask[];
  starting: ServiceTask[];
}

export const FIRST_POLL_DELAY_MS = 1_000;
/** Caps the backoff: a task that turns healthy is noticed within this long. */
export const MAX_POLL_DELAY_MS = 15_000;
const BACKOFF = 1.5;
/** Heartbeats while sleeping between polls; well inside the workflow's heartbeat timeout. */
const HEARTBEAT_EVERY_MS = 2_000;

export function createTaskHealthActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    async waitForHealthyNewTasks(wait: NewTasksWait): Promise<HealthyNewTasks> {
      const { ecs, elbv2 } = clients(wait.aws);
      const context = Context.current();
      const deadline = Date.parse(wait.deadline);
      let progress = resumedProgress(context.info.heartbeatDetails);
      let latest: Assessment | undefined;
      let pollError: string | undefined;
      for (;;) {
        try {
          latest = await pollNewTasks(ecs, elbv2, wait, progress);
          progress = latest.progress;
          pollError = undefined;
        } catch (err) {
          // An AWS hiccup during a 45-minute wait is retried by the next poll, up to the deadline, rather than spending the activity's retries.
          if (!(err instanceof ApplicationFailure) || err.nonRetryable) throw err;
          pollError = err.message;
        }
        if (progress.failures.length > wait.toleratedFailures) throw tooManyFailures(progress.failures, wait.toleratedFailures);
        if (latest && !pollError && latest.healthy.length >= wait.count) {
          return { newTaskArns: oldestFirst(latest.healthy).map((t) => t.arn), failures: progress.failures, polls: progress.polls };
        }
        if (Date.now() >= deadline) throw notHealthyInTime(wait, latest, pollError);

        const details = waitHeartbeat(progress, wait, latest);
        context.heartbeat(details);
        await sleepHeartbeating(Math.min(progress.delayMs, deadline - Date.now()), details);
        progress = { ...progress, delayMs: Math.min(Math.round(progress.delayMs * BACKOFF), MAX_POLL_DELAY_MS) };
      }
    },
  };
}

export type TaskHealthActivities = ReturnType<typeof createTaskHealthActivities>;

/** Reads the service's tasks and the target group once, and judges the new tasks. */
async function pollNewTasks(
  ecs: ECSClient,
  elbv2: ElasticLoadBalancingV2Client,
  wait: NewTasksWait,
  progress: WaitProgress,
): Promise<Assessment> {
  const [current, targets] = await Promise.all([listServiceTasks(ecs, wait), readTargetHealth(elbv2, wait.targetGroupArn)]);
  const currentArns = new Set(current.map((t) => t.arn));
  const vanished = progress.newTaskArns.filter((arn) => !currentArns.has(arn));
  const stopped = vanished.length ? await describeTasks(ecs, wait.cluster, vanished) : [];
  return assessNewTasks({ progress, oldTaskArns: wait.oldTaskArns, current, stopped: withForgotten(vanished, stopped), targets });
}

/**
 * One poll's judgement, as a pure function. A new task is healthy when ECS
 * runs it and its address is healthy in the target group; a new task that
 * stops, or whose target turns unhealthy, is one failure (counted once per
 * task, however often it flaps).
 */
export function assessNewTasks(poll: {
  progress: WaitProgress;
  oldTaskArns: string[];
  /** The service's tasks ECS wants running now. */
  current: ServiceTask[];
  /** New tasks seen before that ECS no longer wants running. */
  stopped: ServiceTask[];
  targets: TargetState[];
}): Assessment {
  const old = new Set(poll.oldTaskArns);
  const fresh = poll.current.filter((task) => !old.has(task.arn));
  const stateByAddress = new Map(poll.targets.map((t) => [t.id, t.state]));
  const failures = [...poll.progress.failures];
  const failed = new Set(failures.map((f) => f.arn));
  const fail = (arn: string, why: string) => {
    if (failed.has(arn)) return;
    failed.add(arn);
    failures.push({ arn, why });
  };

  for (const task of poll.stopped) fail(task.arn, `stopped${task.stoppedReason ? `: ${task.stoppedReason}` : ''}`);
  const healthy: ServiceTask[] = [];
  const starting: ServiceTask[] = [];
  for (const task of fresh) {
    const state = task.ip ? stateByAddress.get(task.ip) : undefined;
    if (task.lastStatus === 'RUNNING' && state === 'healthy') healthy.push(task);
    else {
      if (state === 'unhealthy') fail(task.arn, `unhealthy in the target group (${task.ip})`);
      if (isWanted(task)) starting.push(task);
    }
  }

  // Stopped tasks leave the list (they are in `failures`), so later polls do not describe them again.
  const gone = new Set(poll.stopped.map((t) => t.arn));
  const seen = new Set([...poll.progress.newTaskArns.filter((arn) => !gone.has(arn)), ...fresh.map((t) => t.arn)]);
  return {
    progress: { ...poll.progress, newTaskArns: [...seen], failures, polls: poll.progress.polls + 1 },
    healthy,
    starting,
  };
}

/**
 * The heartbeat: the wait's own progress, plus the shared `progress` shape
 * (src/progress.ts) so `runbook watch` shows "3 / 4 tasks healthy" with a bar.
 * A level, not work done: a task that turns unhealthy takes the count down.
 */
export function waitHeartbeat(progress: WaitProgress, wait: Pick<NewTasksWait, 'count'>, latest: Assessment | undefined): WaitHeartbeat {
  const notes = [
    latest?.starting.length ? `${latest.starting.length} starting` : '',
    progress.failures.length ? `${progress.failures.length} failed` : '',
  ].filter(Boolean);
  return {
    ...progress,
    progress: {
      done: latest?.healthy.length ?? 0,
      total: wait.count,
      unit: 'tasks healthy',
      level: true,
      ...(notes.length ? { note: notes.join(', ') } : {}),
    },
  };
}

function resumedProgress(details: unknown): WaitProgress {
  const resumed = details as Partial<WaitProgress> | undefined;
  return {
    newTaskArns: resumed?.newTaskArns ?? [],
    failures: resumed?.failures ?? [],
    polls: resumed?.polls ?? 0,
    delayMs: resumed?.delayMs ?? FIRST_POLL_DELAY_MS,
  };
}

/** Tasks ECS no longer describes at all (it forgets stopped tasks after a while) still count as stopped. */
function withForgotten(vanished: string[], described: ServiceTask[]): ServiceTask[] {
  const known = new Set(described.map((t) => t.arn));
  const forgotten = vanished
    .filter((arn) => !known.has(arn))
    .map((arn) => ({ arn, lastStatus: 'STOPPED', desiredStatus: 'STOPPED', stoppedReason: 'no longer known to ECS' }));
  return [...described, ...forgotten];
}

async function sleepHeartbeating(ms: number, details: WaitHeartbeat): Promise<void> {
  const context = Context.current();
  const until = Date.now() + Math.max(0, ms);
  while (Date.now() < until) {
    // Context.sleep rejects with a CancelledFailure when the workflow cancels the wait.
    await context.sleep(Math.min(HEARTBEAT_EVERY_MS, until - Date.now()));
    context.heartbeat(details);
  }
}

function oldestFirst(tasks: ServiceTask[]): ServiceTask[] {
  return [...tasks].sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''));
}

function tooManyFailures(failures: TaskFailure[], tolerated: number): ApplicationFailure {
  const list = failures.map((f) => `${shortArn(f.arn)} ${f.why}`).join('; ');
  return ApplicationFailure.create({
    type: 'NewTasksFailing',
    message: `${failures.length} new tasks failed, more than the ${tolerated} transient failure(s) tolerated: ${list}`,
    nonRetryable: true,
    details: [failures],
  });
}

function notHealthyInTime(wait: NewTasksWait, latest: Assessment | undefined, pollError: string | undefined): ApplicationFailure {
  const seen = latest ? `only ${latest.healthy.length} of ${wait.count} new tasks healthy` : `no poll of the new tasks succeeded`;
  const starting = latest ? ` (${latest.starting.length} still starting)` : '';
  return ApplicationFailure.create({
    type: 'NewTasksNotHealthyInTime',
    message: `${seen} by ${wait.deadline}${starting}${pollError ? `; last poll failed: ${pollError}` : ''}`,
    nonRetryable: true,
  });
}
