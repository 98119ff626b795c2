/**
 * Seed 003, "Restart services": scale up, wait for the new tasks to load and
 * turn healthy, stop the tasks that ran before, put the count back.
 *
 *   raise the ASG's desired capacity to its maximum
 *   raise the service's task count by the number of new tasks
 *   wait (20-25 min in production) until the new tasks are healthy in the target group;
 *     one health failure is normal, several mean a bad deploy
 *   stop the tasks started before the run
 *   put the task count back; the ASG scales in by itself
 *
 * Preflight refuses a restart whose new tasks the group at its maximum cannot
 * place (task CPU and memory against the instances), rather than wait out the
 * health timeout. If the new tasks never become healthy, they are stopped and
 * every count changed is put back; the old tasks never stop serving. Once old
 * tasks start stopping there is no going back: a later failure ends `failed`,
 * saying what is left where.
 */
import type { AwsConnection } from '../config.js';
import type { RunbookInput } from '../messages.js';
import type { AutoScalingActivities, Capacity } from '../activities/autoscaling.js';
import type { EcsActivities, ServiceTask } from '../activities/ecs.js';
import type { ElbActivities } from '../activities/elb.js';
import type { HealthyNewTasks, TaskFailure, TaskHealthActivities } from '../activities/task-health.js';
import type { DeployRunsActivities } from '../activities/deploy-runs.js';
import type { PlacementCapacity, TaskCapacityActivities } from '../activities/task-capacity.js';
import { patched, workflowInfo } from '@temporalio/workflow';
import { definePlan, refuseIf, refuseIfHeld, runRunbook, stepActivities, API_RETRY, WAIT_RETRY, type RunbookOf } from './engine/index.js';
import { formatDuration } from '../format.js';

export interface RollingRestartParams {
  /** Where the AWS APIs are; credentials stay with the worker. */
  aws: AwsConnection;
  cluster: string;
  service: string;
  autoScalingGroup: string;
  /** Target group ARN or name. */
  targetGroup: string;
  /** How many new tasks to start; unset, as many as run now. */
  newTasks?: number;
  healthTimeoutMs: number;
  /** Put the ASG's desired capacity back at the end, rather than leave the group to scale in. */
  restoreAsg: boolean;
}

export interface Counts {
  asgDesired: number;
  serviceDesired: number;
  /** Tasks serving: before, the tasks that ran; after, the new healthy ones. */
  tasks: number;
}

export interface RollingRestartResult {
  oldTaskArns: string[];
  newTaskArns: string[];
  /** The old tasks stopped by this run (by any of its attempts). */
  stoppedTaskArns: string[];
  before: Counts & { asgMax: number; healthyTargets: number };
  after: Counts;
  /** New tasks that failed once on the way and were tolerated. */
  toleratedFailures: TaskFailure[];
}

export const rollingRestartPlan = definePlan({
  steps: ['preflight', 'raise-asg', 'raise-desired', 'wait-healthy', 'stop-old-tasks', 'restore-desired', 'restore-asg'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
type RestartRun = RunbookOf<RollingRestartParams, typeof rollingRestartPlan>;

/** One health failure among the new tasks is normal while they load (the seed says so); more mean a bad deploy. */
const TOLERATED_FAILURES = 1;

/** Runs started since this marker check in preflight that the raised group can place the new tasks. */
const CHECKS_CAPACITY = 'restart-checks-capacity';
/** Runs started since this marker treat stopping the old tasks as the point of no return (see `commit`). */
const COMMITS_BEFORE_STOP = 'restart-commits-before-stop';

const aws = stepActivities<AutoScalingActivities & EcsActivities & ElbActivities & DeployRunsActivities & TaskCapacityActivities>({
  startToCloseTimeout: '30 seconds',
  retry: API_RETRY,
});

/** The wait is one long activity: it heartbeats, so a crashed worker's attempt is retried within seconds. */
function healthActivities(healthTimeoutMs: number) {
  return stepActivities<TaskHealthActivities>({
    startToCloseTimeout: healthTimeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: WAIT_RETRY,
  });
}

interface Before {
  asg: Capacity;
  serviceDesired: number;
  oldTasks: ServiceTask[];
  targetGroupArn: string;
  targetGroupName: string;
  healthyTargets: number;
  /** Null where not checked: Fargate, or runs started before CHECKS_CAPACITY. */
  capacity: PlacementCapacity | null;
}

/** What preflight found and what the run will do about it; every step reads from here. */
interface Restart {
  rb: RestartRun;
  p: RollingRestartParams;
  before: Before;
  oldTaskArns: string[];
  newTasks: number;
  raisedDesired: number;
  /** False when the group already runs at its maximum. */
  raisesAsg: boolean;
}

export async function rollingRestart(input: RunbookInput): Promise<RollingRestartResult> {
  return runRunbook(input, rollingRestartPlan, async (rb: RestartRun) => {
    const p = rb.params;
    const before = await rb.read(
      'preflight',
      `read ${p.service} in ${p.cluster}, group ${p.autoScalingGroup} and target group ${p.targetGroup}`,
      () => preflight(rb),
      {
        detail: (b) =>
          `${b.oldTasks.length} tasks running, ${b.healthyTargets} healthy targets; desired count ${b.serviceDesired}; ASG desired ${b.asg.desired} of max ${b.asg.max}` +
          (b.capacity ? `; room for ${b.capacity.placeable} more tasks at the maximum` : ''),
      },
    );
    const newTasks = p.newTasks ?? before.oldTasks.length;
    const restart: Restart = {
      rb,
      p,
      before,
      oldTaskArns: before.oldTasks.map((t) => t.arn),
      newTasks,
      raisedDesired: before.serviceDesired + newTasks,
      raisesAsg: before.asg.desired < before.asg.max,
    };

    await raiseAsgToMax(restart);
    await raiseDesiredCount(restart);
    const healthy = await waitForHealthyNewTasks(restart);
    if (patched(COMMITS_BEFORE_STOP)) rb.commit(pointOfNoReturn(restart, healthy));
    const stopped = await stopOldTasks(restart);
    await restoreDesiredCount(restart);
    await restoreAsg(restart);
    return summarize(restart, healthy, stopped);
  });
}

async function raiseAsgToMax({ rb, p, before, raisesAsg }: Restart): Promise<void> {
  if (!raisesAsg) return rb.skip('raise-asg', `${p.autoScalingGroup} is already at its maximum (${before.asg.max})`);
  await rb.change(
    'raise-asg',
    `raise desired capacity of ${p.autoScalingGroup} ${before.asg.desired} -> ${before.asg.max} (its maximum)`,
    () => aws.setDesiredCapacity({ ...asgOf(p), desiredCapacity: before.asg.max }),
    {
      undo: {
        summary: `restore desired capacity of ${p.autoScalingGroup} to ${before.asg.desired}`,
        run: () => aws.setDesiredCapacity({ ...asgOf(p), desiredCapacity: before.asg.desired }),
      },
      dryResult: { desiredCapacity: before.asg.max },
    },
  );
}

async function raiseDesiredCount({ rb, p, before, raisedDesired }: Restart): Promise<void> {
  await rb.change(
    'raise-desired',
    `raise desired count of ${p.service} ${before.serviceDesired} -> ${raisedDesired}`,
    () => aws.setServiceDesiredCount({ ...serviceOf(p), desiredCount: raisedDesired }),
    {
      undo: {
        summary: `restore desired count of ${p.service} to ${before.serviceDesired}`,
        run: () => aws.setServiceDesiredCount({ ...serviceOf(p), desiredCount: before.serviceDesired }),
      },
      dryResult: { desiredCount: raisedDesired },
    },
  );
}

async function waitForHealthyNewTasks({ rb, p, before, oldTaskArns, newTasks }: Restart): Promise<HealthyNewTasks> {
  const deadline = new Date(Date.now() + p.healthTimeoutMs).toISOString();
  return rb.change<HealthyNewTasks>(
    'wait-healthy',
    `wait until ${newTasks} new tasks of ${p.service} are RUNNING and healthy in ${before.targetGroupName} (up to ${formatDuration(p.healthTimeoutMs)})`,
    () =>
      healthActivities(p.healthTimeoutMs).waitForHealthyNewTasks({
        ...serviceOf(p),
        targetGroupArn: before.targetGroupArn,
        oldTaskArns,
        count: newTasks,
        deadline,
        toleratedFailures: TOLERATED_FAILURES,
      }),
    {
      // Registered before the wait, so it runs when the wait fails, times out or is cancelled (no result).
      // Once the new tasks were healthy it does nothing: they serve, and stopping them could leave nothing running.
      undo: {
        summary: `stop the new tasks of ${p.service} unless they became healthy, and restore its desired count to ${before.serviceDesired}`,
        run: (healthy) =>
          healthy
            ? Promise.resolve()
            : aws.stopNewTasksAndRestoreCount({
                ...serviceOf(p),
                keepTaskArns: oldTaskArns,
                desiredCount: before.serviceDesired,
                reason: 'rolling restart rolled back: new tasks did not become healthy',
              }),
      },
      detail: (h) =>
        `${h.newTaskArns.length} new tasks healthy after ${h.polls} polls${h.failures.length ? `; tolerated: ${h.failures.map((f) => f.why).join('; ')}` : ''}`,
      dryResult: { newTaskArns: [], failures: [], polls: 0 },
    },
  );
}

async function stopOldTasks({ rb, p, oldTaskArns }: Restart): Promise<{ stopped: string[]; alreadyStopped: string[] }> {
  return rb.change(
    'stop-old-tasks',
    `stop the ${oldTaskArns.length} tasks of ${p.service} that ran before the restart`,
    () =>
      aws.stopTasks({ aws: p.aws, cluster: p.cluster, taskArns: oldTaskArns, reason: 'rolling restart: replaced by healthy new tasks' }),
    {
      detail: (s) => `stopped ${s.stopped.length}${s.alreadyStopped.length ? `, ${s.alreadyStopped.length} had already stopped` : ''}`,
      dryResult: { stopped: [], alreadyStopped: [] },
    },
  );
}

async function restoreDesiredCount({ rb, p, before, raisedDesired }: Restart): Promise<void> {
  await rb.change(
    'restore-desired',
    `restore desired count of ${p.service} ${raisedDesired} -> ${before.serviceDesired}`,
    () => aws.setServiceDesiredCount({ ...serviceOf(p), desiredCount: before.serviceDesired }),
    { dryResult: { desiredCount: before.serviceDesired } },
  );
}

/** The seed leaves the group to scale in by itself; `restoreAsg` puts it back at once. */
async function restoreAsg({ rb, p, before, raisesAsg }: Restart): Promise<void> {
  if (!raisesAsg) return rb.skip('restore-asg', 'nothing to restore');
  if (!p.restoreAsg) return rb.skip('restore-asg', `left at ${before.asg.max} for the group to scale in by itself (restoreAsg is false)`);
  await rb.change(
    'restore-asg',
    `restore desired capacity of ${p.autoScalingGroup} ${before.asg.max} -> ${before.asg.desired}`,
    () => aws.setDesiredCapacity({ ...asgOf(p), desiredCapacity: before.asg.desired }),
    { dryResult: { desiredCapacity: before.asg.desired } },
  );
}

/** What stands, and where, should anything fail once old tasks start stopping. */
function pointOfNoReturn({ p, before, oldTaskArns, raisedDesired, raisesAsg }: Restart, healthy: HealthyNewTasks): string {
  return (
    `old tasks were being stopped: ${healthy.newTaskArns.length} new tasks of ${p.service} serve; ` +
    `check which of the ${oldTaskArns.length} old tasks still run and stop them, then set its desired count ${raisedDesired} -> ${before.serviceDesired}` +
    (raisesAsg && p.restoreAsg ? ` and the desired capacity of ${p.autoScalingGroup} ${before.asg.max} -> ${before.asg.desired}` : '')
  );
}

function summarize(
  { rb, p, before, oldTaskArns, newTasks, raisesAsg }: Restart,
  healthy: HealthyNewTasks,
  stopped: { stopped: string[]; alreadyStopped: string[] },
): RollingRestartResult {
  return {
    oldTaskArns,
    newTaskArns: healthy.newTaskArns,
    // An attempt cut short by a crash stops some tasks; the retry finds them stopped. Both are this run's doing.
    stoppedTaskArns: [...stopped.stopped, ...stopped.alreadyStopped],
    before: {
      asgDesired: before.asg.desired,
      asgMax: before.asg.max,
      serviceDesired: before.serviceDesired,
      tasks: oldTaskArns.length,
      healthyTargets: before.healthyTargets,
    },
    after: {
      asgDesired: raisesAsg && !p.restoreAsg ? before.asg.max : before.asg.desired,
      serviceDesired: before.serviceDesired,
      // A dry run reports the plan: as many tasks as it would have started.
      tasks: rb.dryRun ? newTasks : healthy.newTaskArns.length,
    },
    toleratedFailures: healthy.failures,
  };
}

function serviceOf(p: RollingRestartParams) {
  return { aws: p.aws, cluster: p.cluster, service: p.service };
}

function asgOf(p: RollingRestartParams) {
  return { aws: p.aws, autoScalingGroup: p.autoScalingGroup };
}

/** Reads everything the run will touch, and refuses (changing nothing) what it must not restart. */
async function preflight(rb: RestartRun): Promise<Before> {
  const p = rb.params;
  const checksCapacity = !rb.legacy && patched(CHECKS_CAPACITY);
  const [asg, service, targetGroup, holders, capacity] = await Promise.all([
    aws.inspectAutoScalingGroup({ aws: p.aws, autoScalingGroup: p.autoScalingGroup }),
    aws.inspectService({ aws: p.aws, cluster: p.cluster, service: p.service }),
    aws.inspectTargetGroup({ aws: p.aws, targetGroup: p.targetGroup }),
    // Runs started before the service lock did not look; their histories must replay as they ran.
    rb.legacy ? Promise.resolve([]) : aws.findServiceHolders({ env: rb.env, service: p.service, except: workflowInfo().workflowId }),
    checksCapacity
      ? aws.inspectPlacementCapacity({ aws: p.aws, cluster: p.cluster, service: p.service, autoScalingGroup: p.autoScalingGroup })
      : Promise.resolve(null),
  ]);
  refuseIfHeld(holders, 'service', p.service);
  refuseIf(service.deploymentInProgress, 'service', `a deployment of ${p.service} is in progress; restart once it has finished`);
  refuseIf(!service.targetGroupArns.includes(targetGroup.arn), 'targetGroup', `${targetGroup.name} is not a target group of ${p.service}`);
  refuseIf(
    targetGroup.targetType !== 'ip',
    'targetGroup',
    `${targetGroup.name} registers targets by ${targetGroup.targetType}; this runbook follows tasks by IP (awsvpc)`,
  );
  refuseIf(service.tasks.length === 0, 'service', `${p.service} runs no tasks: there is nothing to restart`);
  const newTasks = p.newTasks ?? service.tasks.length;
  if (capacity) refuseIf(capacity.placeable < newTasks, 'newTasks', cannotPlace(p, newTasks, capacity));
  return {
    asg,
    serviceDesired: service.desiredCount,
    oldTasks: service.tasks,
    targetGroupArn: targetGroup.arn,
    targetGroupName: targetGroup.name,
    healthyTargets: targetGroup.healthy,
    capacity,
  };
}

function cannotPlace(p: RollingRestartParams, newTasks: number, c: PlacementCapacity): string {
  const added = Math.max(0, c.asgMax - c.registeredInstances);
  return (
    `the restart needs room for ${newTasks} new tasks of ${p.service} (${c.task.cpu} CPU units, ${c.task.memory} MiB each), ` +
    `but with ${p.autoScalingGroup} at its maximum of ${c.asgMax} the cluster can place ${c.placeable}: ` +
    `${c.onRegistered} in the free room of its container instances and ${c.onNewInstances} on the ${added} ${c.instanceType} instance(s) ` +
    `(${c.instance.cpu} CPU units, ${c.instance.memory} MiB each) the group adds; raise the group's maximum or set newTasks to at most ${c.placeable}`
  );
}
