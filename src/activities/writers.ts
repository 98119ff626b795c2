/**
 * The application's writers: the ECS services that write to the database.
 * The runbook stops them before the copy, and starts them again either on the
 * new database (a new task-definition revision whose environment points
 * there) or, when it rolls back, exactly as they were. Every change sets a
 * value, so repeating one after a lost result does no harm.
 */
import {
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
  type ContainerDefinition,
  type DesiredStatus,
  type ECSClient,
  type RegisterTaskDefinitionCommandInput,
  type Task,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsConnection } from '../config.js';
import { abortable, callAws, clientFactory, invalidInput, type AwsClientFactory } from './aws.js';
import { describeService } from './ecs.js';
import { heartbeatWhile } from './heartbeat.js';
import type { Endpoint } from './pg-connect.js';
import { shortArn } from '../format.js';

export interface WriterRef {
  cluster: string;
  service: string;
  /** The container environment variable that holds the database host. */
  hostVariable: string;
  /** The one that holds its port, if the application reads one. */
  portVariable?: string;
}

export interface WriterState extends WriterRef {
  desiredCount: number;
  /** Tasks running now. */
  runningCount: number;
  taskDefinition: string;
  /** What the task definition's `hostVariable` says now. */
  databaseHost: string;
}

/** Where a writer should end up: how many tasks, of which task definition (unset: leave it). */
export interface WriterTarget {
  cluster: string;
  service: string;
  desiredCount: number;
  taskDefinition?: string;
}

const FIRST_POLL_MS = 500;
const MAX_POLL_MS = 10_000;

export function createWriterActivities(deps: { aws?: AwsClientFactory }) {
  const clients = clientFactory(deps);

  return {
    /** Preflight: every writer exists, is active, and has a task definition whose database host we can repoint. */
    async inspectWriters(args: { aws: AwsConnection; writers: WriterRef[] }): Promise<WriterState[]> {
      const ecs = clients(args.aws).ecs;
      const states: WriterState[] = [];
      for (const [i, writer] of args.writers.entries()) {
        const field = `writers.${i}`;
        const service = await describeWriter(ecs, writer, field);
        const definition = await describeTaskDefinition(ecs, service.taskDefinition!);
        const container = definition.containerDefinitions?.find((c) => envValue(c, writer.hostVariable) !== undefined);
        if (!container) {
          throw invalidInput(
            `${field}.hostVariable`,
            `no container of ${shortArn(service.taskDefinition!)} sets ${writer.hostVariable}, so the writer cannot be pointed at the new database`,
          );
        }
        const tasks = await serviceTasks(ecs, writer);
        states.push({
          ...writer,
          desiredCount: service.desiredCount ?? 0,
          runningCount: tasks.filter((t) => t.lastStatus === 'RUNNING').length,
          taskDefinition: service.taskDefinitionArn,
          databaseHost: envValue(container, writer.hostVariable)!,
        });
      }
      return states;
    },

    /** Sets each writer's desired count, and its task definition where given. */
    async setWriters(args: { aws: AwsConnection; targets: WriterTarget[] }): Promise<WriterTarget[]> {
      const ecs = clients(args.aws).ecs;
      for (const target of args.targets) {
        await callAws(`update service ${target.service}`, () =>
          ecs.send(
            new UpdateServiceCommand({
              cluster: target.cluster,
              service: target.service,
              desiredCount: target.desiredCount,
              ...(target.taskDefinition ? { taskDefinition: target.taskDefinition } : {}),
            }),
            abortable(),
          ),
        );
      }
      return args.targets;
    },

    /**
     * Waits until each writer runs exactly its desired count of tasks, all of
     * its target task definition, and no other task of it is still running
     * (for a count of 0: until nothing writes any more).
     */
    async waitForWriters(args: {
      aws: AwsConnection;
      targets: WriterTarget[];
      deadline: string;
    }): Promise<{ service: string; running: number }[]> {
      const ecs = clients(args.aws).ecs;
      const context = Context.current();
      return heartbeatWhile(async () => {
        for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
          const pending: string[] = [];
          const running: { service: string; running: number }[] = [];
          for (const target of args.targets) {
            const tasks = (await serviceTasks(ecs, target)).filter((t) => t.lastStatus !== 'STOPPED');
            const settled = tasks.filter(
              (t) =>
                t.lastStatus === 'RUNNING' &&
                t.desiredStatus === 'RUNNING' &&
                (!target.taskDefinition || t.taskDefinitionArn === target.taskDefinition),
            );
            running.push({ service: target.service, running: settled.length });
            if (settled.length !== target.desiredCount || tasks.length !== settled.length) {
              pending.push(
                `${target.service}: ${settled.length}/${target.desiredCount} running${tasks.length > settled.length ? `, ${tasks.length - settled.length} other(s) not stopped yet` : ''}`,
              );
            }
          }
          if (!pending.length) return running;
          if (Date.now() >= Date.parse(args.deadline)) {
            throw ApplicationFailure.create({
              type: 'WritersNotSettled',
              message: `writers did not settle by ${args.deadline}: ${pending.join('; ')}`,
              nonRetryable: true,
            });
          }
          await context.sleep(Math.min(delay, Math.max(0, Date.parse(args.deadline) - Date.now())));
        }
      });
    },

    /**
     * Points each writer at `endpoint`: registers a new revision of its task
     * definition with the host (and port) variables changed, and makes the
     * service use it. The desired count is left alone (the writers are
     * stopped while this runs). A writer already on such a revision keeps it.
     */
    async repointWriters(args: { aws: AwsConnection; writers: WriterState[]; endpoint: Endpoint }): Promise<WriterTarget[]> {
      const ecs = clients(args.aws).ecs;
      const repointed: WriterTarget[] = [];
      for (const [i, writer] of args.writers.entries()) {
        const service = await describeWriter(ecs, writer, `writers.${i}`);
        const current = await describeTaskDefinition(ecs, service.taskDefinition!);
        let taskDefinition = current.taskDefinitionArn!;
        if (!pointsAt(current, writer, args.endpoint)) {
          const registered = await callAws(`register a revision of ${current.family}`, () =>
            ecs.send(new RegisterTaskDefinitionCommand(repointedDefinition(current, writer, args.endpoint)), abortable()),
          );
          taskDefinition = registered.taskDefinition!.taskDefinitionArn!;
          await callAws(`update service ${writer.service}`, () =>
            ecs.send(new UpdateServiceCommand({ cluster: writer.cluster, service: writer.service, taskDefinition }), abortable()),
          );
        }
        repointed.push({ cluster: writer.cluster, service: writer.service, desiredCount: writer.desiredCount, taskDefinition });
      }
      return repointed;
    },
  };
}

export type WriterActivities = ReturnType<typeof createWriterActivities>;

async function describeWriter(ecs: ECSClient, writer: Pick<WriterRef, 'cluster' | 'service'>, field: string) {
  const service = await describeService(ecs, writer, field);
  return { ...service, taskDefinitionArn: service.taskDefinition! };
}

async function describeTaskDefinition(
  ecs: ECSClient,
  arn: string,
): Promise<TaskDefinition & { tags?: { key?: string; value?: string }[] }> {
  const answer = await callAws(`describe task definition ${shortArn(arn)}`, () =>
    ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] }), abortable()),
  );
  return { ...answer.taskDefinition!, ...(answer.tags?.length ? { tags: answer.tags } : {}) };
}

/** The service's tasks ECS knows about, running or on their way to STOPPED. */
async function serviceTasks(ecs: ECSClient, ref: Pick<WriterRef, 'cluster' | 'service'>): Promise<Task[]> {
  const arns: string[] = [];
  for (const desiredStatus of ['RUNNING', 'STOPPED'] as DesiredStatus[]) {
    let nextToken: string | undefined;
    do {
      const page = await callAws(`list tasks of ${ref.service}`, () =>
        ecs.send(new ListTasksCommand({ cluster: ref.cluster, serviceName: ref.service, desiredStatus, nextToken }), abortable()),
      );
      arns.push(...(page.taskArns ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
  }
  const tasks: Task[] = [];
  for (let i = 0; i < arns.length; i += 100) {
    const batch = arns.slice(i, i + 100);
    const answer = await callAws(`describe tasks of ${ref.service}`, () =>
      ecs.send(new DescribeTasksCommand({ cluster: ref.cluster, tasks: batch }), abortable()),
    );
    tasks.push(...(answer.tasks ?? []));
  }
  // The group names the service; checking it also keeps other tasks out where ListTasks ignores serviceName (moto does).
  return tasks.filter((t) => t.group === `service:${ref.service}`);
}

function envValue(container: ContainerDefinition, name: string): string | undefined {
  return container.environment?.find((e) => e.name === name)?.value;
}

function pointsAt(definition: TaskDefinition, writer: WriterRef, endpoint: Endpoint): boolean {
  return (definition.containerDefinitions ?? [])
    .filter((c) => envValue(c, writer.hostVariable) !== undefined)
    .every(
      (c) =>
        envValue(c, writer.hostVariable) === endpoint.host &&
        (!writer.portVariable ||
          envValue(c, writer.portVariable) === undefined ||
          envValue(c, writer.portVariable) === String(endpoint.port)),
    );
}

/** The same task definition, but every container that reads the database host reads the new one. */
function repointedDefinition(
  current: TaskDefinition & { tags?: { key?: string; value?: string }[] },
  writer: WriterRef,
  endpoint: Endpoint,
): RegisterTaskDefinitionCommandInput {
  const containerDefinitions = (current.containerDefinitions ?? []).map((container) => {
    if (envValue(container, writer.hostVariable) === undefined) return container;
    const environment = (container.environment ?? []).map((variable) => {
      if (variable.name === writer.hostVariable) return { ...variable, value: endpoint.host };
      if (writer.portVariable && variable.name === writer.portVariable) return { ...variable, value: String(endpoint.port) };
      return variable;
    });
    return { ...container, environment };
  });
  return {
    family: current.family!,
    containerDefinitions,
    taskRoleArn: current.taskRoleArn,
    executionRoleArn: current.executionRoleArn,
    networkMode: current.networkMode,
    volumes: current.volumes,
    placementConstraints: current.placementConstraints,
    requiresCompatibilities: current.requiresCompatibilities,
    cpu: current.cpu,
    memory: current.memory,
    pidMode: current.pidMode,
    ipcMode: current.ipcMode,
    proxyConfiguration: current.proxyConfiguration,
    ephemeralStorage: current.ephemeralStorage,
    runtimePlatform: current.runtimePlatform,
    ...(current.tags?.length ? { tags: current.tags } : {}),
  };
}
