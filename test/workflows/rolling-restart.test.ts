/**
 * rolling-restart's workflow with stub AWS activities: the order of its
 * changes, the order of its rollback, its preflight refusals, and the live
 * progress of its long wait as `runbook status` and `runbook watch` show it.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import type { Capacity } from '../../src/activities/autoscaling.js';
import type { ServiceSnapshot } from '../../src/activities/ecs.js';
import type { PlacementCapacity } from '../../src/activities/task-capacity.js';
import type { HealthyNewTasks, NewTasksWait, WaitProgress } from '../../src/activities/task-health.js';
import { readRun } from '../../src/cli/run-status.js';
import { FailureType } from '../../src/messages.js';
import type { HeartbeatProgress } from '../../src/progress.js';
import type { RollingRestartParams, RollingRestartResult } from '../../src/workflows/rolling-restart.js';
import { outcome, runbookInput, statusWhen, useStubWorker } from '../helpers/stub-worker.js';
import { waitUntil } from '../helpers/wait-until.js';
import { workflowTier } from './setup.js';

const cliPath = fileURLToPath(new URL('../../src/client.js', import.meta.url));

const params: RollingRestartParams = {
  aws: { region: 'us-east-1' },
  cluster: 'main',
  service: 'app',
  autoScalingGroup: 'app-asg',
  targetGroup: 'app-tg',
  healthTimeoutMs: 60_000,
  restoreAsg: true,
};

/** A service of two tasks in a group at 2 of 4, and what the run asked AWS to do, in order. */
function stubAws(
  options: {
    service?: Partial<ServiceSnapshot>;
    wait?: (args: NewTasksWait) => Promise<HealthyNewTasks>;
    heldBy?: string[];
    placeable?: number;
    failStop?: boolean;
  } = {},
) {
  const calls: string[] = [];
  const activities = {
    async inspectAutoScalingGroup(): Promise<Capacity> {
      return { min: 1, max: 4, desired: 2, instances: 2 };
    },
    async inspectService(): Promise<ServiceSnapshot> {
      return {
        desiredCount: 2,
        deploymentInProgress: false,
        targetGroupArns: ['arn:tg/app-tg'],
        tasks: ['old-1', 'old-2'].map((arn) => ({ arn, lastStatus: 'RUNNING', desiredStatus: 'RUNNING' })),
        ...options.service,
      };
    },
    async inspectTargetGroup() {
      return { arn: 'arn:tg/app-tg', name: 'app-tg', targetType: 'ip', targets: [], healthy: 2 };
    },
    async inspectPlacementCapacity(): Promise<PlacementCapacity> {
      const placeable = options.placeable ?? 14;
      return {
        task: { cpu: 512, memory: 1024 },
        instanceType: 'm5.large',
        instance: { cpu: 2048, memory: 8192 },
        asgMax: 4,
        registeredInstances: 2,
        onRegistered: Math.max(0, placeable - 8),
        onNewInstances: Math.min(8, placeable),
        placeable,
      };
    },
    async findServiceHolders(): Promise<string[]> {
      return options.heldBy ?? [];
    },
    async setDesiredCapacity({ desiredCapacity }: { desiredCapacity: number }) {
      calls.push(`asg desired ${desiredCapacity}`);
      return { desiredCapacity };
    },
    async setServiceDesiredCount({ desiredCount }: { desiredCount: number }) {
      calls.push(`service desired ${desiredCount}`);
      return { desiredCount };
    },
    async waitForHealthyNewTasks(args: NewTasksWait): Promise<HealthyNewTasks> {
      calls.push(`wait for ${args.count} healthy`);
      return options.wait ? options.wait(args) : { newTaskArns: ['new-1', 'new-2'], failures: [], polls: 3 };
    },
    async stopTasks({ taskArns }: { taskArns: string[] }) {
      calls.push(`stop ${taskArns.join(' ')}`);
      if (options.failStop) throw ApplicationFailure.nonRetryable('old-2 could not be stopped: AccessDenied', 'AccessDenied');
      return { stopped: taskArns, alreadyStopped: [] };
    },
    async stopNewTasksAndRestoreCount({ keepTaskArns, desiredCount }: { keepTaskArns: string[]; desiredCount: number }) {
      calls.push(`stop all but ${keepTaskArns.join(' ')}, service desired ${desiredCount}`);
      return { stopped: ['new-1'], desiredCount };
    },
  };
  return { calls, activities };
}

describe('rolling-restart workflow, with stub AWS', () => {
  const stubs = useStubWorker([
    'inspectPlacementCapacity',
    'findServiceHolders',
    'inspectAutoScalingGroup',
    'inspectService',
    'inspectTargetGroup',
    'setDesiredCapacity',
    'setServiceDesiredCount',
    'waitForHealthyNewTasks',
    'stopTasks',
    'stopNewTasksAndRestoreCount',
  ]);

  it('raises, waits, stops the old tasks and restores, in the order of the seed', async () => {
    const aws = stubAws();
    const { start } = stubs.serve(aws.activities);
    const result = (await (await start('rollingRestart', runbookInput('rolling-restart', params))).result()) as RollingRestartResult;
    assert.deepEqual(result.newTaskArns, ['new-1', 'new-2']);
    assert.deepEqual(result.stoppedTaskArns, ['old-1', 'old-2']);
    assert.deepEqual(aws.calls, [
      'asg desired 4',
      'service desired 4',
      'wait for 2 healthy',
      'stop old-1 old-2',
      'service desired 2',
      'asg desired 2',
    ]);
  });

  it('rolls back newest change first when the new tasks never turn healthy; old tasks keep serving', async () => {
    const aws = stubAws({
      wait: async () => Promise.reject(ApplicationFailure.nonRetryable('2 new tasks failed health checks', 'NewTasksUnhealthy')),
    });
    const { start } = stubs.serve(aws.activities);
    const handle = await start('rollingRestart', runbookInput('rolling-restart', params));
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.rolledBack);
    assert.match(end.message ?? '', /2 new tasks failed health checks; 3 change\(s\) undone/);
    const status = await statusWhen(handle, () => true);
    assert.deepEqual(
      status.steps.map((s) => `${s.name}:${s.status}`),
      [
        'resolve:done',
        'preflight:done',
        'raise-asg:compensated',
        'raise-desired:compensated',
        'wait-healthy:compensated',
        'stop-old-tasks:skipped',
        'restore-desired:skipped',
        'restore-asg:skipped',
      ],
    );
    assert.deepEqual(aws.calls, [
      'asg desired 4',
      'service desired 4',
      'wait for 2 healthy',
      'stop all but old-1 old-2, service desired 2',
      'service desired 2',
      'asg desired 2',
    ]);
  });

  it('refuses, with the numbers, new tasks the group at its maximum cannot place, changing nothing', async () => {
    const aws = stubAws({ placeable: 3 });
    const { start } = stubs.serve(aws.activities);
    const end = await outcome(await start('rollingRestart', runbookInput('rolling-restart', { ...params, newTasks: 5 })));
    assert.equal(end.errorType, FailureType.invalidInput);
    assert.match(
      end.message ?? '',
      /^newTasks: the restart needs room for 5 new tasks of app \(512 CPU units, 1024 MiB each\), but with app-asg at its maximum of 4 the cluster can place 3: 0 in the free room of its container instances and 3 on the 2 m5.large instance\(s\)/,
    );
    assert.deepEqual(aws.calls, []);
  });

  it('a failure once old tasks stop ends failed with what is left where, never rolled-back', async () => {
    const aws = stubAws({ failStop: true });
    const { start } = stubs.serve(aws.activities);
    const handle = await start('rollingRestart', runbookInput('rolling-restart', params));
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.failed);
    assert.match(
      end.message ?? '',
      /old-2 could not be stopped: AccessDenied; nothing undone: old tasks were being stopped: 2 new tasks of app serve; check which of the 2 old tasks still run and stop them, then set its desired count 4 -> 2 and the desired capacity of app-asg 4 -> 2/,
    );
    const status = await statusWhen(handle, () => true);
    assert.equal(status.phase, 'failed');
    assert.deepEqual(
      aws.calls,
      ['asg desired 4', 'service desired 4', 'wait for 2 healthy', 'stop old-1 old-2'],
      'no count is put back under the new tasks',
    );
  });

  it('refuses a service whose deployment is in progress, changing nothing', async () => {
    const aws = stubAws({ service: { deploymentInProgress: true } });
    const { start } = stubs.serve(aws.activities);
    const end = await outcome(await start('rollingRestart', runbookInput('rolling-restart', params)));
    assert.equal(end.errorType, FailureType.invalidInput);
    assert.match(end.message ?? '', /^service: a deployment of app is in progress/);
    assert.deepEqual(aws.calls, []);
  });

  it('refuses a service another runbook holds, as a conflict naming the holder, changing nothing', async () => {
    const aws = stubAws({ heldBy: ['prod-tag-deploy:test:app'] });
    const { start } = stubs.serve(aws.activities);
    const end = await outcome(await start('rollingRestart', runbookInput('rolling-restart', params)));
    assert.equal(end.errorType, FailureType.conflict);
    assert.match(end.message ?? '', /^service: app is held by prod-tag-deploy:test:app: one runbook at a time per service/);
    assert.deepEqual(aws.calls, []);
  });

  it('a dry run reads and says what it would change', async () => {
    const aws = stubAws();
    const { start } = stubs.serve(aws.activities);
    const handle = await start('rollingRestart', runbookInput('rolling-restart', params, { dryRun: true }));
    const result = (await handle.result()) as RollingRestartResult;
    assert.equal(result.after.tasks, 2);
    const status = await statusWhen(handle, () => true);
    assert.match(status.steps.find((s) => s.name === 'raise-desired')?.detail ?? '', /^would raise desired count of app 2 -> 4/);
    assert.deepEqual(aws.calls, []);
  });

  it('shows the progress the wait heartbeats in `runbook status` and `runbook watch`', async function () {
    this.timeout(90_000);
    let release = false;
    const progress: HeartbeatProgress = { done: 1, total: 2, unit: 'healthy tasks' };
    const aws = stubAws({
      wait: async () => {
        const context = Context.current();
        const details: WaitProgress & { progress: HeartbeatProgress } = {
          newTaskArns: ['new-1', 'new-2'],
          failures: [],
          polls: 1,
          delayMs: 1000,
          progress,
        };
        while (!release) {
          context.heartbeat(details);
          await context.sleep(100);
        }
        return { newTaskArns: ['new-1', 'new-2'], failures: [], polls: 2 };
      },
    });
    const { temporalAddress, dir } = workflowTier();
    const cli = (args: string[]) =>
      execa(process.execPath, [cliPath, ...args], { cwd: dir, env: { TEMPORAL_ADDRESS: temporalAddress }, reject: false });
    const { start, client } = stubs.serve(aws.activities);
    const handle = await start('rollingRestart', runbookInput('rolling-restart', params));
    await waitUntil(async () => (await readRun(client, handle.workflowId)).progress.length > 0, {
      timeoutMs: 20_000,
      what: 'the wait to heartbeat its progress',
    });
    const view = await readRun(client, handle.workflowId);
    assert.equal(view.status.currentStep, 'wait-healthy');
    assert.deepEqual(
      view.progress.map((p) => [p.activity, p.done, p.total, p.unit]),
      [['waitForHealthyNewTasks', 1, 2, 'healthy tasks']],
    );

    const status = await cli(['status', handle.workflowId]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /wait-healthy +running[^\n]*\n {6}1 \/ 2 healthy tasks \(50%\)/);
    const json = await cli(['--json', 'status', handle.workflowId]);
    assert.deepEqual(
      (JSON.parse(json.stdout) as { progress: { done: number }[] }).progress.map((p) => p.done),
      [1],
    );

    const watch = cli(['watch', handle.workflowId]);
    let watched = '';
    watch.stdout?.on('data', (chunk: Buffer) => (watched += chunk.toString()));
    await waitUntil(() => watched.includes('… wait-healthy: 1 / 2 healthy tasks (50%)'), {
      timeoutMs: 30_000,
      what: () => `watch to show the progress; it printed:\n${watched}`,
    });
    release = true;
    const watchedToEnd = await watch;
    assert.equal(watchedToEnd.exitCode, 0, watchedToEnd.stderr);
    assert.match(watchedToEnd.stdout, /run succeeded/);
  });
});
