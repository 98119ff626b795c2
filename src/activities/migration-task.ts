/**
 * The app's migration command as a one-off ECS task (seed 003, "Migrations"):
 * read what it would run on, run it once per workflow run, and follow it to
 * its end through its CloudWatch log.
 *
 * Idempotence: the task is started with `startedBy = runbook/<run ID>` (and
 * tagged with the workflow ID for people reading the console), and RunTask is
 * only called when no task with that mark exists; the run ID is also RunTask's
 * client token. A retried or replayed start therefore finds the task the first
 * attempt started instead of migrating twice.
 */
import { DescribeLogGroupsCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type RouteTable,
} from '@aws-sdk/client-ec2';
import {
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  RunTaskCommand,
  type ECSClient,
  type Task,
} from '@aws-sdk/client-ecs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { abortable, awsFailure, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';
import { extraAwsClients, type ExtraAwsClientFactory } from './aws-extra-clients.js';
import { logsClients, readLogForward, type LogsClientFactory, type LogStreamRef } from './cloudwatch-logs.js';
import { taskFactsReader, type TaskFactsDeps } from './task-facts.js';

export interface MigrationTaskDeps extends AwsDeps, TaskFactsDeps {
  awsExtra?: ExtraAwsClientFactory;
  logs?: LogsClientFactory;
}

export interface MigrationSetupQuery {
  aws: AwsConnection;
  cluster: string;
  /** Task definition family: its newest ACTIVE revision is the one pinned. */
  taskDefinition: string;
  container: string;
  vpc: string;
  subnetName: string;
  securityGroup: string;
}

export interface SubnetFacts {
  id: string;
  vpc: string;
  /** Routes to an internet gateway or maps public IPs on launch. */
  public: boolean;
}

/** What preflight found; the workflow decides what it refuses. */
export interface MigrationSetup {
  /** The pinned revision: every later step names this ARN, never the family. */
  taskDefinitionArn: string;
  revision: number;
  /** Image of the container, and its tag (after the last ':'), if the container exists. */
  image?: string;
  imageTag?: string;
  hasContainer: boolean;
  /** The container's awslogs configuration; unset when it logs elsewhere (or nowhere). */
  log?: { group: string; streamPrefix: string; groupExists: boolean };
  launchTypes: string[];
  vpcExists: boolean;
  subnets: SubnetFacts[];
  securityGroup?: { id: string; vpc: string };
  /** Migration tasks (the container's command overridden) still running in the cluster. */
  runningMigrations: string[];
}

export interface MigrationRun {
  aws: AwsConnection;
  cluster: string;
  taskDefinitionArn: string;
  container: string;
  command: string[];
  subnets: string[];
  securityGroup: string;
  /** The container's awslogs stream prefix, to name the task's log stream. */
  logStreamPrefix: string;
  /** Marks the task as this run's: see the module comment. */
  workflowId: string;
  runId: string;
}

export interface StartedTask {
  taskArn: string;
  logStream: string;
  /** False when an earlier attempt had started it already. */
  started: boolean;
}

export interface FollowArgs {
  aws: AwsConnection;
  cluster: string;
  taskArn: string;
  container: string;
  log: LogStreamRef;
  /** ISO time after which the wait gives up (the task is left running). */
  deadline: string;
  pollMs?: number;
}

export interface MigrationOutcome {
  taskArn: string;
  exitCode: number;
  logGroup: string;
  logStream: string;
  /** Lines read from the log, and the last of them. */
  lines: number;
  tail: string[];
}

/** What a heartbeat keeps, so a retried wait reads the log on from where the last attempt was. */
interface FollowProgress {
  nextToken?: string;
  lines: number;
  tail: string[];
}

export const STARTED_BY_PREFIX = 'runbook/';
export const WORKFLOW_ID_TAG = 'runbook:workflow-id';
const TAIL_LINES = 20;
const DEFAULT_POLL_MS = 2_000;

export function createMigrationTaskActivities(deps: MigrationTaskDeps) {
  const clients = clientFactory(deps);
  const extra = deps.awsExtra ?? extraAwsClients;
  const logs = deps.logs ?? logsClients;
  const taskFacts = taskFactsReader(deps);

  return {
    async inspectMigrationSetup(q: MigrationSetupQuery): Promise<MigrationSetup> {
      const ecs = clients(q.aws).ecs;
      const { taskDefinition } = await describeTaskDefinition(ecs, q.taskDefinition);
      if (!taskDefinition || taskDefinition.status !== 'ACTIVE')
        throw invalidInput('taskDefinition', `no ACTIVE revision of ${q.taskDefinition}`);
      const container = taskDefinition.containerDefinitions?.find((c) => c.name === q.container);
      const awslogs = container?.logConfiguration?.logDriver === 'awslogs' ? (container.logConfiguration.options ?? {}) : undefined;
      const logGroup = awslogs?.['awslogs-group'];
      const [network, groupExists, runningMigrations] = await Promise.all([
        inspectNetwork(extra(q.aws).ec2, q),
        logGroup ? logGroupExists(logs(q.aws), logGroup) : Promise.resolve(false),
        migrationTasks(ecs, q.cluster),
      ]);
      return {
        taskDefinitionArn: taskDefinition.taskDefinitionArn!,
        revision: taskDefinition.revision ?? 0,
        hasContainer: Boolean(container),
        ...(container?.image ? { image: container.image, imageTag: imageTag(container.image) } : {}),
        ...(logGroup ? { log: { group: logGroup, streamPrefix: awslogs['awslogs-stream-prefix'] ?? '', groupExists } } : {}),
        launchTypes: taskDefinition.requiresCompatibilities ?? [],
        ...network,
        runningMigrations,
      };
    },

    /** Starts the migration task unless this run already did (see the module comment). */
    async runMigrationTask(run: MigrationRun): Promise<StartedTask> {
      const ecs = clients(run.aws).ecs;
      const startedBy = `${STARTED_BY_PREFIX}${run.runId}`;
      const existing = await tasksStartedBy(ecs, run.cluster, startedBy);
      const started = (taskArn: string, isNew: boolean): StartedTask => ({
        taskArn,
        logStream: logStreamName(run.logStreamPrefix, run.container, taskArn),
        started: isNew,
      });
      if (existing.length) return started(existing[0]!, false);
      const { tasks = [], failures = [] } = await callAws(`run ${run.taskDefinitionArn} in ${run.cluster}`, () =>
        ecs.send(
          new RunTaskCommand({
            cluster: run.cluster,
            taskDefinition: run.taskDefinitionArn,
            launchType: 'FARGATE',
            count: 1,
            networkConfiguration: {
              awsvpcConfiguration: { subnets: run.subnets, securityGroups: [run.securityGroup], assignPublicIp: 'DISABLED' },
            },
            overrides: { containerOverrides: [{ name: run.container, command: run.command }] },
            startedBy,
            clientToken: run.runId,
            tags: [{ key: WORKFLOW_ID_TAG, value: run.workflowId }],
          }),
          abortable(),
        ),
      );
      const task = tasks[0];
      if (!task?.taskArn) {
        throw ApplicationFailure.create({
          type: 'MigrationNotStarted',
          message: `ECS did not start the migration task: ${failures.map((f) => `${f.arn ?? ''} ${f.reason ?? ''}`.trim()).join('; ') || 'no task and no reason'}`,
          nonRetryable: true,
        });
      }
      return started(task.taskArn, true);
    },

    /**
     * Follows the task's log until the task has stopped, heartbeating the log
     * position and the last lines. Succeeds only when the container exited 0.
     */
    async followMigrationTask(args: FollowArgs): Promise<MigrationOutcome> {
      const context = Context.current();
      const progress: FollowProgress = { lines: 0, tail: [], ...(context.info.heartbeatDetails as FollowProgress | undefined) };
      const logClient = logs(args.aws);
      const readLog = async () => {
        const page = await readLogForward(logClient, args.log, progress.nextToken);
        progress.nextToken = page.nextToken;
        progress.lines += page.lines.length;
        progress.tail = [...progress.tail, ...page.lines].slice(-TAIL_LINES);
        context.heartbeat(progress);
      };
      for (;;) {
        await readLog();
        const [task] = await taskFacts({ aws: args.aws, cluster: args.cluster, taskArns: [args.taskArn] });
        if (!task)
          throw ApplicationFailure.create({
            type: 'MigrationTaskLost',
            message: `ECS no longer knows task ${args.taskArn}`,
            nonRetryable: true,
          });
        if (task.lastStatus === 'STOPPED') {
          // The last lines can reach CloudWatch after the task is reported stopped.
          await readLog();
          const container = task.containers.find((c) => c.name === args.container);
          return judge(args, task.stoppedReason, container?.exitCode, container?.reason, progress);
        }
        if (Date.now() > Date.parse(args.deadline)) {
          throw ApplicationFailure.create({
            type: 'MigrationTimeout',
            message: `task ${taskId(args.taskArn)} still runs at the deadline; it was left running (a migration must not be interrupted)${tailText(progress.tail)}`,
            nonRetryable: true,
          });
        }
        await context.sleep(args.pollMs ?? DEFAULT_POLL_MS);
      }
    },
  };
}

export type MigrationTaskActivities = ReturnType<typeof createMigrationTaskActivities>;

/** awslogs names a task's stream `<prefix>/<container>/<task id>`. */
export function logStreamName(prefix: string, container: string, taskArn: string): string {
  return `${prefix}/${container}/${taskId(taskArn)}`;
}

export function taskId(taskArn: string): string {
  return taskArn.split('/').at(-1)!;
}

/** The tag of an image reference (`repo:tag`, `repo@sha256:…` has none). */
export function imageTag(image: string): string | undefined {
  if (image.includes('@')) return undefined;
  const lastPart = image.split('/').at(-1)!;
  return lastPart.includes(':') ? lastPart.split(':').at(-1) : 'latest';
}

function judge(
  args: FollowArgs,
  stoppedReason: string | undefined,
  exitCode: number | undefined,
  reason: string | undefined,
  progress: FollowProgress,
): MigrationOutcome {
  const id = taskId(args.taskArn);
  if (exitCode === undefined) {
    throw ApplicationFailure.create({
      type: 'MigrationNotRun',
      message: `task ${id} stopped before ${args.container} ran (no exit code): ${stoppedReason ?? 'no reason given'}${reason ? ` (${reason})` : ''}; the schema is unchanged`,
      nonRetryable: true,
    });
  }
  if (exitCode !== 0) {
    throw ApplicationFailure.create({
      type: 'MigrationFailed',
      message: `${args.container} exited with code ${exitCode}: the schema may be partly migrated; roll forward with a fixed migration${tailText(progress.tail)}`,
      nonRetryable: true,
    });
  }
  return {
    taskArn: args.taskArn,
    exitCode,
    logGroup: args.log.group,
    logStream: args.log.stream,
    lines: progress.lines,
    tail: progress.tail,
  };
}

function tailText(tail: string[]): string {
  return tail.length ? `. Last log lines:\n${tail.map((l) => `  ${l}`).join('\n')}` : '';
}

async function inspectNetwork(ec2: import('@aws-sdk/client-ec2').EC2Client, q: MigrationSetupQuery) {
  const inVpc = { Name: 'vpc-id', Values: [q.vpc] };
  const [{ Vpcs = [] }, { Subnets = [] }, { RouteTables = [] }, { SecurityGroups = [] }] = await Promise.all([
    callAws(
      `describe VPC ${q.vpc}`,
      () => ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'vpc-id', Values: [q.vpc] }] }), abortable()),
      'vpc',
    ),
    callAws(
      `find subnets named ${q.subnetName}`,
      () => ec2.send(new DescribeSubnetsCommand({ Filters: [inVpc, { Name: 'tag:Name', Values: [q.subnetName] }] }), abortable()),
      'subnetName',
    ),
    callAws(`describe route tables of ${q.vpc}`, () => ec2.send(new DescribeRouteTablesCommand({ Filters: [inVpc] }), abortable()), 'vpc'),
    callAws(
      `describe security group ${q.securityGroup}`,
      () => ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-id', Values: [q.securityGroup] }] }), abortable()),
      'securityGroup',
    ),
  ]);
  const group = SecurityGroups[0];
  return {
    vpcExists: Vpcs.length > 0,
    subnets: Subnets.map((s) => ({
      id: s.SubnetId!,
      vpc: s.VpcId!,
      public: Boolean(s.MapPublicIpOnLaunch) || routesToInternet(routeTableOf(s.SubnetId!, RouteTables)),
    })),
    ...(group ? { securityGroup: { id: group.GroupId!, vpc: group.VpcId ?? '' } } : {}),
  };
}

/** The subnet's own route table, else the VPC's main one (as EC2 routes it). */
function routeTableOf(subnetId: string, tables: RouteTable[]): RouteTable | undefined {
  return (
    tables.find((t) => t.Associations?.some((a) => a.SubnetId === subnetId)) ?? tables.find((t) => t.Associations?.some((a) => a.Main))
  );
}

function routesToInternet(table: RouteTable | undefined): boolean {
  return (table?.Routes ?? []).some((r) => r.GatewayId?.startsWith('igw-'));
}

async function logGroupExists(logs: import('@aws-sdk/client-cloudwatch-logs').CloudWatchLogsClient, group: string): Promise<boolean> {
  const { logGroups = [] } = await callAws(`describe log group ${group}`, () =>
    logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: group }), abortable()),
  );
  return logGroups.some((g) => g.logGroupName === group);
}

/** ECS answers a family it does not know with a ClientException ("Unable to describe task definition"): bad input. */
async function describeTaskDefinition(ecs: ECSClient, family: string) {
  try {
    return await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: family }), abortable());
  } catch (err) {
    if ((err as Error).name === 'ClientException')
      throw invalidInput('taskDefinition', `no task definition ${family}: ${(err as Error).message}`);
    throw awsFailure(err, `describe task definition ${family}`, 'taskDefinition');
  }
}

/** One-off tasks of the cluster whose container command was overridden: migrations, as this runbook runs them. */
async function migrationTasks(ecs: ECSClient, cluster: string): Promise<string[]> {
  const { taskArns = [] } = await callAws(
    `list tasks of ${cluster}`,
    () => ecs.send(new ListTasksCommand({ cluster, desiredStatus: 'RUNNING' }), abortable()),
    'cluster',
  );
  if (!taskArns.length) return [];
  const tasks: Task[] = [];
  for (let i = 0; i < taskArns.length; i += 100) {
    const { tasks: page = [] } = await callAws(`describe tasks of ${cluster}`, () =>
      ecs.send(new DescribeTasksCommand({ cluster, tasks: taskArns.slice(i, i + 100) }), abortable()),
    );
    tasks.push(...page);
  }
  return tasks
    .filter(
      (t) =>
        t.lastStatus !== 'STOPPED' && !t.group?.startsWith('service:') && t.overrides?.containerOverrides?.some((o) => o.command?.length),
    )
    .map((t) => t.taskArn!);
}

async function tasksStartedBy(ecs: ECSClient, cluster: string, startedBy: string): Promise<string[]> {
  const arns: string[] = [];
  for (const desiredStatus of ['RUNNING', 'STOPPED'] as const) {
    const { taskArns = [] } = await callAws(
      `list tasks started by ${startedBy}`,
      () => ecs.send(new ListTasksCommand({ cluster, startedBy, desiredStatus }), abortable()),
      'cluster',
    );
    arns.push(...taskArns);
  }
  return arns;
}
