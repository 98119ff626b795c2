/**
 * One-off tasks for the sandbox's ECS scheduler simulator: moto accepts
 * RunTask but never runs anything, so a task whose container command is
 * overridden with the app's migration command is "run" here: the image's
 * pending migrations are applied to the sandbox database, the output goes to
 * the container's awslogs stream in moto's CloudWatch Logs, and after a while
 * the task stops with the container's exit code.
 *
 * moto reports every container as exited 0, so the exit code is recorded in
 * the records bucket (see activities/task-facts.ts), which the sandbox's
 * worker reads through its injected task-facts reader. A task set up to fail
 * to start stops with an image pull error and no exit code, as ECS reports one.
 */
import { CloudWatchLogsClient, CreateLogStreamCommand, PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DescribeTaskDefinitionCommand, StopTaskCommand, type ECSClient, type Task } from '@aws-sdk/client-ecs';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { recordedTaskKey, type RecordedTask } from '../../activities/task-facts.js';
import type { AppMigrations } from './app-migrations.js';

export interface OneOffTaskSettings {
  /** How long a one-off task runs before its container exits. Default 1.5 s. */
  runMs?: number;
  /** One-off tasks started from now on cannot pull their image: they stop without running. */
  pullFailure?: boolean;
}

export interface OneOffTaskOptions {
  logs: CloudWatchLogsClient;
  s3: S3Client;
  recordsBucket: string;
  migrations: AppMigrations;
  /** Superuser URL of the database the app's migrations run against. */
  databaseUrl: string;
  /** The container command that means "run the migrations". */
  migrationCommand?: string[];
}

interface Running {
  exitAt: number;
  exit: { code: number | null; reason: string; stoppedReason: string };
}

const DEFAULT_RUN_MS = 1_500;

export class OneOffTasks {
  private runMs = DEFAULT_RUN_MS;
  private pullFailure = false;
  private readonly running = new Map<string, Running>();
  /** CloudWatch orders events by timestamp: each line gets a later one than the line before. */
  private lastTimestamp = 0;
  private readonly migrationCommand: string;

  constructor(private readonly options: OneOffTaskOptions) {
    this.migrationCommand = JSON.stringify(options.migrationCommand ?? ['run', 'migration:run']);
  }

  configure(settings: OneOffTaskSettings): void {
    if (settings.runMs !== undefined) this.runMs = settings.runMs;
    if (settings.pullFailure !== undefined) this.pullFailure = settings.pullFailure;
  }

  /** Starts what is new, stops what has finished. */
  /**
   * Starts and finishes the cluster's one-off tasks among `clusterTasks` (those
   * meant to run, as the ECS simulator read them this tick). Resolves true
   * when none runs.
   */
  async reconcile(ecs: ECSClient, cluster: string, clusterTasks: Task[]): Promise<boolean> {
    const tasks = clusterTasks.filter((t) => !t.group?.startsWith('service:'));
    for (const task of tasks) {
      const arn = task.taskArn!;
      const known = this.running.get(arn);
      if (!known) this.running.set(arn, await this.start(ecs, task));
      else if (Date.now() >= known.exitAt) await this.finish(ecs, cluster, task, known);
    }
    return tasks.length === 0;
  }

  private async start(ecs: ECSClient, task: Task): Promise<Running> {
    const exitAt = Date.now() + this.runMs;
    const override = task.overrides?.containerOverrides?.find((o) => o.command?.length);
    const container = override?.name ?? 'app';
    if (this.pullFailure) {
      return {
        exitAt,
        exit: {
          code: null,
          reason: 'CannotPullContainerError: pull image manifest has been retried 5 time(s): image not found',
          stoppedReason: 'Task failed to start',
        },
      };
    }
    const definition = await this.definitionOf(ecs, task, container);
    const log = (lines: string[]) =>
      definition.log
        ? this.writeLog(definition.log.group, `${definition.log.prefix}/${container}/${task.taskArn!.split('/').at(-1)}`, lines)
        : Promise.resolve();
    await log([`Starting ${container} (${definition.image}) with command ${JSON.stringify(override?.command ?? [])}`]);
    if (JSON.stringify(override?.command) !== this.migrationCommand) {
      await log([`unknown command; exiting`]);
      return { exitAt, exit: { code: 2, reason: 'unknown command', stoppedReason: 'Essential container in task exited' } };
    }
    const report = await this.options.migrations.run(definition.image.split(':').at(-1)!, this.options.databaseUrl);
    await log(report.lines);
    return { exitAt, exit: { code: report.exitCode, reason: '', stoppedReason: 'Essential container in task exited' } };
  }

  /** Records the exit where the sandbox's worker reads it, then stops the task as ECS would. */
  private async finish(ecs: ECSClient, cluster: string, task: Task, run: Running): Promise<void> {
    const container = task.overrides?.containerOverrides?.find((o) => o.command?.length)?.name ?? 'app';
    const record: RecordedTask = {
      containers: { [container]: { exitCode: run.exit.code, ...(run.exit.reason ? { reason: run.exit.reason } : {}) } },
    };
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.recordsBucket,
        Key: recordedTaskKey(task.taskArn!),
        Body: JSON.stringify(record),
        ContentType: 'application/json',
      }),
    );
    await ecs.send(new StopTaskCommand({ cluster, task: task.taskArn!, reason: run.exit.stoppedReason }));
    this.running.delete(task.taskArn!);
  }

  private async definitionOf(
    ecs: ECSClient,
    task: Task,
    container: string,
  ): Promise<{ image: string; log?: { group: string; prefix: string } }> {
    const { taskDefinition } = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: task.taskDefinitionArn! }));
    const definition = taskDefinition?.containerDefinitions?.find((c) => c.name === container);
    const options = definition?.logConfiguration?.logDriver === 'awslogs' ? (definition.logConfiguration.options ?? {}) : {};
    const group = options['awslogs-group'];
    return { image: definition?.image ?? '', ...(group ? { log: { group, prefix: options['awslogs-stream-prefix'] ?? '' } } : {}) };
  }

  private async writeLog(group: string, stream: string, lines: string[]): Promise<void> {
    await this.options.logs.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: stream })).catch((err: Error) => {
      if (err.name !== 'ResourceAlreadyExistsException') throw err;
    });
    const logEvents = lines.map((message) => ({ timestamp: (this.lastTimestamp = Math.max(Date.now(), this.lastTimestamp + 1)), message }));
    await this.options.logs.send(new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents }));
  }
}

/** Running tasks of the cluster that no service owns. */
