/**
 * ECS: read a service and its tasks, change its desired count, stop tasks.
 * Every change sets a value or stops a named task, so repeating it after a
 * lost result does no harm.
 */
import {
  DescribeServicesCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  StopTaskCommand,
  UpdateServiceCommand,
  type ECSClient,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import { Context } from '@temporalio/activity';
import { abortable, awsFailure, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';

/**
 * Where a task's start time is kept when ECS gives none. Real ECS sets
 * `startedAt`; moto (the sandbox) never does, so the sandbox's scheduler
 * simulator records the start in this tag when it runs the task.
 */
export const START_TIME_TAG = 'startedAt';

export interface ServiceRef {
  aws: AwsConnection;
  cluster: string;
  service: string;
}

export interface ServiceTask {
  arn: string;
  /** PENDING, RUNNING, STOPPED, … */
  lastStatus: string;
  desiredStatus: string;
  /** ISO time the task started, when known. */
  startedAt?: string;
  /** The task's own address (awsvpc networking): what the target group sees. */
  ip?: string;
  stoppedReason?: string;
}

export interface ServiceSnapshot {
  desiredCount: number;
  /** A deployment (new task definition, forced redeploy) is still replacing tasks. */
  deploymentInProgress: boolean;
  /** Target groups the service registers its tasks in. */
  targetGroupArns: string[];
  /** The service's tasks that ECS wants running (PENDING or RUNNING). */
  tasks: ServiceTask[];
}

export function createEcsActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    async inspectService(ref: ServiceRef): Promise<ServiceSnapshot> {
      const ecs = clients(ref.aws).ecs;
      const service = await describeService(ecs, ref);
      return {
        desiredCount: service.desiredCount ?? 0,
        deploymentInProgress: isDeploymentInProgress(service),
        targetGroupArns: (service.loadBalancers ?? []).flatMap((lb) => (lb.targetGroupArn ? [lb.targetGroupArn] : [])),
        tasks: await listServiceTasks(ecs, ref),
      };
    },

    async setServiceDesiredCount(args: ServiceRef & { desiredCount: number }): Promise<{ desiredCount: number }> {
      await setDesiredCount(clients(args.aws).ecs, args, args.desiredCount);
      return { desiredCount: args.desiredCount };
    },

    /** Stops exactly these tasks; a task already stopped is left alone. */
    async stopTasks(args: {
      aws: AwsConnection;
      cluster: string;
      taskArns: string[];
      reason: string;
    }): Promise<{ stopped: string[]; alreadyStopped: string[] }> {
      const ecs = clients(args.aws).ecs;
      const tasks = await describeTasks(ecs, args.cluster, args.taskArns);
      const running = tasks.filter(isWanted);
      for (const task of running) {
        await stopTask(ecs, args.cluster, task.arn, args.reason);
        Context.current().heartbeat();
      }
      const stopped = new Set(running.map((t) => t.arn));
      return { stopped: [...stopped], alreadyStopped: args.taskArns.filter((arn) => !stopped.has(arn)) };
    },

    /**
     * Rolls back a scale-up whose new tasks never became healthy: stops every
     * task of the service that is not one of `keepTaskArns`, then puts the
     * desired count back. Stopping first, in one activity, keeps the window in
     * which the scheduler could pick a kept task to scale in as short as we can.
     */
    async stopNewTasksAndRestoreCount(
      args: ServiceRef & { keepTaskArns: string[]; desiredCount: number; reason: string },
    ): Promise<{ stopped: string[]; desiredCount: number }> {
      const ecs = clients(args.aws).ecs;
      const keep = new Set(args.keepTaskArns);
      const newTasks = (await listServiceTasks(ecs, args)).filter((task) => !keep.has(task.arn));
      for (const task of newTasks) {
        await stopTask(ecs, args.cluster, task.arn, args.reason);
        Context.current().heartbeat();
      }
      await setDesiredCount(ecs, args, args.desiredCount);
      return { stopped: newTasks.map((t) => t.arn), desiredCount: args.desiredCount };
    },
  };
}

export type EcsActivities = ReturnType<typeof createEcsActivities>;

/**
 * The service, which must be ACTIVE: a missing cluster or service is the
 * operator's input. `field` says where the service was given (`writers.0`
 * blames `writers.0.cluster` or `writers.0.service`; unset, `cluster` or `service`).
 */
export async function describeService(ecs: ECSClient, ref: Pick<ServiceRef, 'cluster' | 'service'>, field?: string): Promise<Service> {
  const input = (name: 'cluster' | 'service') => (field ? `${field}.${name}` : name);
  let answer;
  try {
    answer = await ecs.send(new DescribeServicesCommand({ cluster: ref.cluster, services: [ref.service] }), abortable());
  } catch (err) {
    if ((err as Error).name === 'ClusterNotFoundException') throw invalidInput(input('cluster'), `no ECS cluster '${ref.cluster}'`);
    throw awsFailure(err, `describe service ${ref.service} in cluster ${ref.cluster}`, input('service'));
  }
  const service = answer.services?.[0];
  if (!service || service.status !== 'ACTIVE') {
    throw invalidInput(
      input('service'),
      `no active ECS service '${ref.service}' in cluster '${ref.cluster}'${service ? ` (it is ${service.status})` : ''}`,
    );
  }
  return service;
}

/**
 * ECS keeps the previous deployment ACTIVE beside the new PRIMARY one until
 * the old tasks are gone, so more than one deployment means one is in
 * progress. `rolloutState` alone is not used: a desired-count change does not
 * start a deployment, and moto reports every deployment IN_PROGRESS forever.
 */
export function isDeploymentInProgress(service: Pick<Service, 'deployments'>): boolean {
  return (service.deployments ?? []).filter((d) => d.status !== 'INACTIVE').length > 1;
}

/** The service's tasks that ECS wants running, newest information from ECS. */
export async function listServiceTasks(ecs: ECSClient, ref: Omit<ServiceRef, 'aws'>): Promise<ServiceTask[]> {
  const arns: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await callAws(`list tasks of ${ref.service}`, () =>
      ecs.send(new ListTasksCommand({ cluster: ref.cluster, serviceName: ref.service, desiredStatus: 'RUNNING', nextToken }), abortable()),
    );
    arns.push(...(page.taskArns ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  // A service's tasks carry the group `service:<name>`; checking it keeps other tasks out even where
  // ListTasks ignores `serviceName` (moto does).
  const group = `service:${ref.service}`;
  return (await describeTaskObjects(ecs, ref.cluster, arns)).filter((task) => task.group === group).map(toServiceTask);
}

/** These tasks as ECS sees them now (stopped ones included, for as long as ECS remembers them). */
export async function describeTasks(ecs: ECSClient, cluster: string, taskArns: string[]): Promise<ServiceTask[]> {
  return (await describeTaskObjects(ecs, cluster, taskArns)).map(toServiceTask);
}

/** True while ECS means the task to run. */
export function isWanted(task: ServiceTask): boolean {
  return task.desiredStatus !== 'STOPPED' && task.lastStatus !== 'STOPPED';
}

const DESCRIBE_TASKS_LIMIT = 100;

async function describeTaskObjects(ecs: ECSClient, cluster: string, taskArns: string[]): Promise<Task[]> {
  const tasks: Task[] = [];
  for (let i = 0; i < taskArns.length; i += DESCRIBE_TASKS_LIMIT) {
    const batch = taskArns.slice(i, i + DESCRIBE_TASKS_LIMIT);
    const answer = await callAws(`describe ${batch.length} task(s) in cluster ${cluster}`, () =>
      ecs.send(new DescribeTasksCommand({ cluster, tasks: batch, include: ['TAGS'] }), abortable()),
    );
    tasks.push(...(answer.tasks ?? []));
  }
  return tasks;
}

function toServiceTask(task: Task): ServiceTask {
  const startedAt = task.startedAt?.toISOString() ?? task.tags?.find((tag) => tag.key === START_TIME_TAG)?.value;
  const ip = task.attachments
    ?.find((a) => a.type === 'ElasticNetworkInterface')
    ?.details?.find((d) => d.name === 'privateIPv4Address')?.value;
  return {
    arn: task.taskArn!,
    lastStatus: task.lastStatus ?? 'UNKNOWN',
    desiredStatus: task.desiredStatus ?? 'UNKNOWN',
    ...(startedAt ? { startedAt } : {}),
    ...(ip ? { ip } : {}),
    ...(task.stoppedReason ? { stoppedReason: task.stoppedReason } : {}),
  };
}

async function setDesiredCount(ecs: ECSClient, ref: Omit<ServiceRef, 'aws'>, desiredCount: number): Promise<void> {
  await callAws(`set desired count of ${ref.service} to ${desiredCount}`, () =>
    ecs.send(new UpdateServiceCommand({ cluster: ref.cluster, service: ref.service, desiredCount }), abortable()),
  );
}

async function stopTask(ecs: ECSClient, cluster: string, taskArn: string, reason: string): Promise<void> {
  await callAws(`stop task ${taskArn}`, () => ecs.send(new StopTaskCommand({ cluster, task: taskArn, reason }), abortable()));
}
