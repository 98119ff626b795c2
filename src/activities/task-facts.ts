/**
 * What a task's containers did: exit codes and the image digests they ran.
 * Runbooks judge a migration by its exit code and a deploy by the digest its
 * new tasks run, so these come through a reader the worker is given: in AWS,
 * ECS's own DescribeTasks; in the sandbox, ECS plus what the scheduler
 * simulator recorded, because moto reports every container as exited 0 and
 * knows no digests.
 */
import { DescribeTasksCommand } from '@aws-sdk/client-ecs';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { abortable, awsFailure, callAws, clientFactory, type AwsConnection, type AwsDeps } from './aws.js';

export interface ContainerFacts {
  name: string;
  /** Unset while the container runs, and when it never started (image pull failure, no capacity). */
  exitCode?: number;
  /** Why the container stopped, when ECS says. */
  reason?: string;
  imageDigest?: string;
}

export interface TaskFacts {
  taskArn: string;
  lastStatus: string;
  stoppedReason?: string;
  containers: ContainerFacts[];
}

export interface TaskFactsQuery {
  aws: AwsConnection;
  cluster: string;
  taskArns: string[];
}

/** Tasks ECS no longer knows are left out. */
export type TaskFactsReader = (query: TaskFactsQuery) => Promise<TaskFacts[]>;

export interface TaskFactsDeps extends AwsDeps {
  taskFacts?: TaskFactsReader;
}

/** The reader a worker uses: the one it was given, else ECS's. */
export function taskFactsReader(deps: TaskFactsDeps): TaskFactsReader {
  return deps.taskFacts ?? ecsTaskFacts(deps);
}

/** ECS's own account of the tasks (AWS). */
export function ecsTaskFacts(deps: AwsDeps): TaskFactsReader {
  const clients = clientFactory(deps);
  return async ({ aws, cluster, taskArns }) => {
    if (!taskArns.length) return [];
    const { tasks = [] } = await callAws(`describe ${taskArns.length} task(s) in cluster ${cluster}`, () =>
      clients(aws).ecs.send(new DescribeTasksCommand({ cluster, tasks: taskArns }), abortable()),
    );
    return tasks.map((task) => ({
      taskArn: task.taskArn!,
      lastStatus: task.lastStatus ?? 'UNKNOWN',
      ...(task.stoppedReason ? { stoppedReason: task.stoppedReason } : {}),
      containers: (task.containers ?? []).map((c) => ({
        name: c.name ?? '',
        ...(c.exitCode !== undefined && c.exitCode !== null ? { exitCode: c.exitCode } : {}),
        ...(c.reason ? { reason: c.reason } : {}),
        ...(c.imageDigest ? { imageDigest: c.imageDigest } : {}),
      })),
    }));
  };
}

/** What an emulator's scheduler records for one task, where its ECS cannot express it. */
export interface RecordedTask {
  /** Per container name. `exitCode` null: the container never ran. */
  containers: Record<string, { exitCode?: number | null; reason?: string; imageDigest?: string }>;
}

/** Where the record of task `taskArn` is kept in the recorder's bucket. */
export function recordedTaskKey(taskArn: string): string {
  return `tasks/${taskArn.split('/').at(-1)}.json`;
}

/**
 * ECS's account, corrected by the records an emulated scheduler keeps in
 * `bucket` (on the environment's own S3): the sandbox's worker is given this
 * reader, a worker on AWS never is.
 */
export function recordedTaskFacts(bucket: string, deps: AwsDeps): TaskFactsReader {
  const clients = clientFactory(deps);
  const fromEcs = ecsTaskFacts(deps);
  return async (query) => {
    const facts = await fromEcs(query);
    return Promise.all(
      facts.map(async (task) => {
        const record = await readRecord(clients(query.aws).s3, bucket, task.taskArn);
        if (!record) return task;
        const names = new Set([...task.containers.map((c) => c.name), ...Object.keys(record.containers)]);
        const containers = [...names].map((name): ContainerFacts => {
          const seen = task.containers.find((c) => c.name === name) ?? { name };
          const recorded = record.containers[name];
          if (!recorded) return seen;
          const { exitCode: _ecsExitCode, ...rest } = seen;
          return {
            ...rest,
            ...(typeof recorded.exitCode === 'number' ? { exitCode: recorded.exitCode } : {}),
            ...(recorded.reason ? { reason: recorded.reason } : {}),
            ...(recorded.imageDigest ? { imageDigest: recorded.imageDigest } : {}),
          };
        });
        return { ...task, containers };
      }),
    );
  };
}

async function readRecord(s3: S3Client, bucket: string, taskArn: string): Promise<RecordedTask | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: recordedTaskKey(taskArn) }), abortable());
    return JSON.parse(await object.Body!.transformToString()) as RecordedTask;
  } catch (err) {
    if ((err as Error).name === 'NoSuchKey') return undefined;
    throw awsFailure(err, `read the record of ${taskArn} in s3://${bucket}`);
  }
}
