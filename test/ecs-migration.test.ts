/**
 * `ecs-migration` end to end: the real CLI and worker against the sandbox
 * (moto, the ECS simulator running migration tasks against the sandbox's
 * PostgreSQL and logging to moto's CloudWatch Logs). Every check reads what an
 * operator would: ECS for tasks, CloudWatch for the log, the database for
 * `schema_migration`.
 */
import assert from 'node:assert/strict';
import { CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DescribeSecurityGroupsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DescribeTasksCommand, ECSClient, ListTasksCommand, type Task } from '@aws-sdk/client-ecs';
import type { RunStatus } from '../src/messages.js';
import { imageTag, logStreamName } from '../src/activities/migration-task.js';
import { SANDBOX_COMMITS } from '../src/stack/sandbox/app-migrations.js';
import { APP_LOG_GROUP } from '../src/stack/sandbox/migration-target.js';
import { withClient } from '../src/stack/sandbox/pg.js';
import type { EcsMigrationResult } from '../src/workflows/ecs-migration.js';
import { sandbox, testStack } from './setup.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const CLUSTER = 'sandbox';
const idOf = (env: string) => `ecs-migration:${env}:app`;

describe('ecs-migration on the sandbox', function () {
  this.timeout(180_000);
  let ecs: ECSClient;
  let logs: CloudWatchLogsClient;
  let ec2: EC2Client;
  let added = 0;

  before(() => {
    const config = {
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    };
    ecs = new ECSClient(config);
    logs = new CloudWatchLogsClient(config);
    ec2 = new EC2Client(config);
  });

  beforeEach(async () => {
    await sandbox().migrations.tasks.configure({ runMs: 1_500, pullFailure: false });
    await worker().start();
  });

  after(() => {
    for (const client of [ecs, logs, ec2]) client?.destroy();
  });

  // --- the sandbox as an operator sees it ------------------------------------------------------------

  async function appliedVersions(): Promise<string[]> {
    return withClient(sandbox().regions.databaseUrl, async (db) =>
      (await db.query<{ version: string }>('SELECT version FROM schema_migration ORDER BY applied_at, version')).rows.map((r) => r.version),
    );
  }

  /** Every one-off task of the cluster (running or stopped), oldest unknown: ECS gives no order. */
  async function oneOffTasks(): Promise<Task[]> {
    const arns: string[] = [];
    for (const desiredStatus of ['RUNNING', 'STOPPED'] as const)
      arns.push(...((await ecs.send(new ListTasksCommand({ cluster: CLUSTER, desiredStatus }))).taskArns ?? []));
    if (!arns.length) return [];
    const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: arns, include: ['TAGS'] }));
    return tasks.filter((t) => !t.group?.startsWith('service:'));
  }

  /** A migration only the next run's image carries (a test's "next commit"). */
  async function addMigration(sql = `CREATE TABLE test_table_${++added} (id int)`): Promise<string> {
    const version = `20250101${String(++added).padStart(6, '0')}_test_${added}`;
    await sandbox().migrations.catalog.add(SANDBOX_COMMITS.migrating, { version, sql });
    return version;
  }

  async function finalStatus(id: string): Promise<RunStatus> {
    return (await runbookJson<RunStatus>(['status', id])).json;
  }

  const detail = (status: RunStatus, step: string) => status.steps.find((s) => s.name === step)?.detail ?? '';

  // --- the tests -----------------------------------------------------------------------------------

  it('`runbook describe` lists its inputs, steps and checkpoint', async () => {
    const { exitCode, stdout } = await runbook(['describe', 'ecs-migration', '--env', 'sandbox']);
    assert.equal(exitCode, 0, stdout);
    const steps = [...stdout.matchAll(/^\s+\d+\. (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(steps, ['preflight', 'run-migration', 'run-task', 'follow-task', 'verify']);
    for (const input of ['cluster', 'taskDefinition', 'vpc', 'securityGroup', 'subnetName', 'database'])
      assert.match(stdout, new RegExp(`^\\s+${input} <`, 'm'));
  });

  it('refuses bad input with exit 2 and starts no task', async () => {
    const before = (await oneOffTasks()).length;
    const { SecurityGroups = [] } = await ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['default'] }] }),
    );
    const otherVpcGroup = SecurityGroups.find((g) => g.VpcId !== sandbox().migrations.network.vpc)!.GroupId!;
    const cases: [string[], RegExp][] = [
      [['--set', 'subnetName=PublicSubnet'], /subnetName: subnet-\S+ named PublicSubnet route to the internet/],
      [['--set', 'subnetName=NoSuchSubnet'], /subnetName: no subnet named NoSuchSubnet/],
      [['--set', `securityGroup=${otherVpcGroup}`], /securityGroup: sg-\S+ is in vpc-\S+, not in vpc-/],
      [['--set', 'expectedImageTag=0000000'], /expectedImageTag: app:\d+ runs sandbox-app:a476b78, not tag 0000000/],
      [['--set', 'taskDefinition=app:1'], /taskDefinition: a task definition family/],
      [['--set', 'taskDefinition=no-such-family'], /taskDefinition: /],
      [['--set', 'vpc=nope'], /vpc: a VPC ID/],
      [['--set', 'requireStagingRun=false'], /stagingOverrideReason: required/],
    ];
    for (const [args, message] of cases) {
      const result = await runbook(['start', 'ecs-migration', '--env', 'sandbox', ...args]);
      assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout + result.stderr, message);
      await waitClosed(
        args[1]!.startsWith('taskDefinition=') ? `ecs-migration:sandbox:${args[1]!.slice('taskDefinition='.length)}` : idOf('sandbox'),
      );
    }
    assert.equal((await oneOffTasks()).length, before, 'no task was started');
  });

  it('--dry-run pins the revision and reads the table, and runs nothing', async () => {
    const version = await addMigration();
    const before = await appliedVersions();
    const tasks = (await oneOffTasks()).length;
    const run = await runbook(['start', 'ecs-migration', '--env', 'sandbox', '--dry-run', '--wait']);
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    const status = await finalStatus(idOf('sandbox'));
    assert.equal(status.phase, 'succeeded');
    assert.match(
      detail(status, 'preflight'),
      new RegExp(`pinned app:\\d+ \\(sandbox-app:a476b78\\); subnets subnet-\\S+, subnet-\\S+; schema_migration: ${before.length} rows`),
    );
    assert.match(
      detail(status, 'run-task'),
      /^would run app:\d+ on Fargate in sandbox \(2 private subnets, sg-\S+, no public IP\) with app running `run migration:run`/,
    );
    assert.deepEqual(await appliedVersions(), before);
    assert.ok(!(await appliedVersions()).includes(version));
    assert.equal((await oneOffTasks()).length, tasks);
  });

  it('runs the migration as a one-off Fargate task, follows its log, and succeeds on exit code 0', async () => {
    const version = await addMigration();
    const before = await appliedVersions();
    const run = await runbook(['start', 'ecs-migration', '--env', 'sandbox', '--wait']);
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);

    const status = await finalStatus(idOf('sandbox'));
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    const result = status.result as EcsMigrationResult;
    const after = await appliedVersions();
    assert.ok(after.includes(version), 'the new migration is in schema_migration');
    assert.deepEqual(
      result.applied,
      after.filter((v) => !before.includes(v)),
    );
    assert.deepEqual([result.before.count, result.after.count], [before.length, after.length]);
    assert.equal(result.exitCode, 0);
    assert.equal(result.imageTag, SANDBOX_COMMITS.migrating);
    assert.match(result.taskDefinitionArn, /task-definition\/app:\d+$/);
    assert.match(
      detail(status, 'follow-task'),
      new RegExp(`exit code 0 after \\d+ log lines; last:[\\s\\S]*Migration ${version} has been executed successfully`),
    );
    assert.equal(detail(status, 'run-migration'), 'sandbox is not protected: no approval needed');

    // ECS: one Fargate task on the pinned revision, in the private subnets, with the command overridden, marked as this run's.
    const [task] = (await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: [result.taskArn], include: ['TAGS'] }))).tasks ?? [];
    assert.equal(task!.lastStatus, 'STOPPED');
    assert.equal(task!.taskDefinitionArn, result.taskDefinitionArn);
    assert.equal(task!.launchType, 'FARGATE');
    assert.deepEqual(task!.overrides?.containerOverrides?.[0]?.command, ['run', 'migration:run']);
    assert.match(task!.startedBy ?? '', /^runbook\//);
    assert.ok(task!.tags?.some((t) => t.key === 'runbook:workflow-id' && t.value === idOf('sandbox')));
    const subnet = task!.attachments?.[0]?.details?.find((d) => d.name === 'subnetId')?.value;
    assert.ok(sandbox().migrations.network.privateSubnets.includes(subnet!), `ran in ${subnet}`);

    // CloudWatch: the stream the result names holds the migration's output.
    const { events = [] } = await logs.send(
      new GetLogEventsCommand({ logGroupName: APP_LOG_GROUP, logStreamName: result.logStream, startFromHead: true }),
    );
    assert.ok(events.some((e) => e.message === `Migration ${version} has been executed successfully.`));
    assert.equal(result.logStream, `app/app/${result.taskArn.split('/').at(-1)}`);
  });

  it('a failing migration ends `failed` with the log tail, the migrations before it applied', async () => {
    const good = await addMigration();
    const bad = await addMigration('ALTER TABLE no_such_table ADD COLUMN x int');
    try {
      const run = await runbook(['start', 'ecs-migration', '--env', 'sandbox', '--wait']);
      assert.equal(run.exitCode, 1, run.stdout + run.stderr);
      const status = await finalStatus(idOf('sandbox'));
      assert.equal(status.phase, 'failed');
      assert.match(status.error ?? '', /app exited with code 1: the schema may be partly migrated/);
      assert.match(status.error ?? '', /QueryFailedError: relation "no_such_table" does not exist/);
      assert.match(status.error ?? '', /nothing undone: a migration cannot be undone/);
      assert.equal(status.steps.find((s) => s.name === 'follow-task')?.status, 'failed');
      const applied = await appliedVersions();
      assert.ok(applied.includes(good), 'the migration before the failing one stays applied');
      assert.ok(!applied.includes(bad));
    } finally {
      await sandbox().migrations.catalog.remove(SANDBOX_COMMITS.migrating, bad);
    }
  });

  it('a task that never starts ends `failed` naming its stopped reason, schema unchanged', async () => {
    const version = await addMigration();
    const before = await appliedVersions();
    await sandbox().migrations.tasks.configure({ pullFailure: true });
    const run = await runbook(['start', 'ecs-migration', '--env', 'sandbox', '--wait']);
    assert.equal(run.exitCode, 1, run.stdout + run.stderr);
    const status = await finalStatus(idOf('sandbox'));
    assert.equal(status.phase, 'failed');
    assert.match(
      status.error ?? '',
      /stopped before app ran \(no exit code\): Task failed to start \(CannotPullContainerError: .*\); the schema is unchanged/,
    );
    assert.deepEqual(await appliedVersions(), before);
    assert.ok(!before.includes(version));
  });

  it('a SIGKILLed worker while the migration runs resumes following it and never starts a second task', async function () {
    this.timeout(240_000);
    const version = await addMigration();
    // Long enough to kill the worker mid-wait and for the server to notice (heartbeat timeout 10 s).
    await sandbox().migrations.tasks.configure({ runMs: 25_000 });
    const tasksBefore = new Set((await oneOffTasks()).map((t) => t.taskArn));
    const start = await runbook(['start', 'ecs-migration', '--env', 'sandbox']);
    assert.equal(start.exitCode, 0, start.stdout + start.stderr);
    await waitUntil(async () => (await pendingActivities(idOf('sandbox'))).includes('followMigrationTask'), {
      timeoutMs: 60_000,
      what: 'the wait for the migration task',
    });
    await worker().kill('SIGKILL');
    await worker().start();

    const status = await waitForStatus(idOf('sandbox'), (s) => s.phase !== 'running', 180_000);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    const result = status.result as EcsMigrationResult;
    const started = (await oneOffTasks()).filter((t) => !tasksBefore.has(t.taskArn));
    assert.deepEqual(
      started.map((t) => t.taskArn),
      [result.taskArn],
      'exactly one task was started',
    );
    assert.ok((await appliedVersions()).includes(version));
    const lines = result.logTail.filter((l) => l === `Migration ${version} has been executed successfully.`);
    assert.equal(lines.length, 1, 'a resumed wait does not read the log twice');
  });

  it('a cancel while the migration runs does not stop it', async () => {
    const version = await addMigration();
    await sandbox().migrations.tasks.configure({ runMs: 6_000 });
    const start = await runbook(['start', 'ecs-migration', '--env', 'sandbox']);
    assert.equal(start.exitCode, 0, start.stdout + start.stderr);
    await waitUntil(async () => (await pendingActivities(idOf('sandbox'))).includes('followMigrationTask'), {
      timeoutMs: 60_000,
      what: 'the wait for the migration task',
    });
    const cancel = await runbook(['cancel', idOf('sandbox'), '--wait']);
    const status = await finalStatus(idOf('sandbox'));
    assert.notEqual(status.phase, 'rolled-back', cancel.stdout);
    const follow = status.steps.find((s) => s.name === 'follow-task');
    assert.equal(follow?.status, 'done', `follow-task: ${follow?.status} ${follow?.detail}`);
    const taskArn = /started (\S+)/.exec(detail(status, 'run-task'))?.[1];
    const [task] = (await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: [taskArn!] }))).tasks ?? [];
    assert.equal(task!.stoppedReason, 'Essential container in task exited', 'the task ran to its end; nobody stopped it');
    assert.ok((await appliedVersions()).includes(version));
  });

  it('production migrates an image only after staging did, and only once approved by someone else', async () => {
    await addMigration();
    const refused = await runbook(['start', 'ecs-migration', '--env', 'production', '--set', 'stagingEnv=staging']);
    assert.equal(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(
      refused.stdout + refused.stderr,
      /requireStagingRun: production migrates an image only after it migrated on staging: no succeeded ecs-migration run on staging with image tag a476b78/,
    );
    await waitClosed(idOf('production'));
    const noStaging = await runbook(['start', 'ecs-migration', '--env', 'production']);
    assert.equal(noStaging.exitCode, 2);
    assert.match(noStaging.stdout + noStaging.stderr, /stagingEnv: production is protected/);

    const staging = await runbook(['start', 'ecs-migration', '--env', 'staging', '--wait']);
    assert.equal(staging.exitCode, 0, staging.stdout + staging.stderr);

    const version = await addMigration();
    const waiting = await runbook(['start', 'ecs-migration', '--env', 'production', '--set', 'stagingEnv=staging', '--wait']);
    assert.equal(waiting.exitCode, 0, waiting.stdout + waiting.stderr);
    const atCheckpoint = await waitForStatus(idOf('production'), (s) => s.waitingFor?.checkpoint === 'run-migration');
    assert.match(
      atCheckpoint.waitingFor!.prompt,
      /app:\d+ \(image sandbox-app:a476b78\); schema_migration has \d+ rows, newest \S+; a migration cannot be undone/,
    );
    assert.ok(!(await appliedVersions()).includes(version), 'nothing runs before approval');
    assert.equal((await oneOffTasks()).filter((t) => t.tags?.some((tag) => tag.value === idOf('production'))).length, 0);

    const self = await runbook(['approve', idOf('production'), '--checkpoint', 'run-migration']);
    assert.equal(self.exitCode, 2, 'the requester may not approve on production');
    const approved = await runbook(['approve', idOf('production'), '--checkpoint', 'run-migration'], { as: 'dba' });
    assert.equal(approved.exitCode, 0, approved.stdout + approved.stderr);
    const status = await waitForStatus(idOf('production'), (s) => s.phase !== 'running' && s.phase !== 'waiting', 60_000);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    assert.match(JSON.stringify((status.result as EcsMigrationResult).staging), /ecs-migration:staging:app/);
    assert.ok((await appliedVersions()).includes(version));
  });
});

/** Waits until no run holds this workflow ID (or none ever started). */
async function waitClosed(workflowId: string): Promise<void> {
  const handle = (await temporalClient()).workflow.getHandle(workflowId);
  await waitUntil(async () => (await handle.describe().catch(() => undefined))?.status.name !== 'RUNNING', {
    timeoutMs: 10_000,
    what: `${workflowId} to close`,
  });
}

async function pendingActivities(workflowId: string): Promise<string[]> {
  const { raw } = await (await temporalClient()).workflow.getHandle(workflowId).describe();
  return (raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? '');
}

describe('ecs-migration, its judgements', () => {
  it('reads an image tag as ECS references name it', () => {
    assert.equal(imageTag('123456789012.dkr.ecr.us-east-1.amazonaws.com/sandbox-app:a476b78'), 'a476b78');
    assert.equal(imageTag('registry.local:5000/team/app'), 'latest', 'a registry port is not a tag');
    assert.equal(imageTag('app'), 'latest');
    assert.equal(imageTag('app@sha256:0f3a'), undefined, 'a digest reference has no tag');
  });

  it('names the task log stream as awslogs does: prefix/container/task id', () => {
    assert.equal(logStreamName('app', 'app', 'arn:aws:ecs:us-east-1:123456789012:task/sandbox/9c65af1e'), 'app/app/9c65af1e');
  });
});
