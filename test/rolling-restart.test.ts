/**
 * `rolling-restart` end to end: the real CLI and worker against the sandbox
 * (moto plus the ECS scheduler simulator). Every check reads AWS the way an
 * operator would: ECS for tasks and counts, the target group for health.
 */
import assert from 'node:assert/strict';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand, SetDesiredCapacityCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeServicesCommand, DescribeTasksCommand, ECSClient, ListTasksCommand, type Task } from '@aws-sdk/client-ecs';
import {
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { RunStatus } from '../src/messages.js';
import type { RollingRestartResult } from '../src/workflows/rolling-restart.js';
import { sandbox, testStack } from './setup.js';
import { SIMULATOR_DEFAULTS } from '../src/stack/sandbox/ecs-simulator.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const WORKFLOW_ID = 'rolling-restart:sandbox:app';
const CLUSTER = 'sandbox';
const SERVICE = 'app';
const GROUP = 'sandbox-app';
/** The sandbox's new tasks pass their health checks after this long: long enough to be mid-wait, short enough to be quick. */
const HEALTH_DELAY_MS = 2_000;
const SETTLE_MS = 20_000;

interface TaskView {
  arn: string;
  ip: string | undefined;
  lastStatus: string;
}

/** What the sandbox looks like to an operator: counts, running tasks, healthy addresses. */
interface SandboxState {
  serviceDesired: number;
  asgDesired: number;
  running: TaskView[];
  healthyIps: string[];
}

describe('rolling-restart on the sandbox', function () {
  this.timeout(180_000);
  let ecs: ECSClient;
  let autoScaling: AutoScalingClient;
  let elbv2: ElasticLoadBalancingV2Client;
  let targetGroupArn: string;

  before(async () => {
    const config = {
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    };
    ecs = new ECSClient(config);
    autoScaling = new AutoScalingClient(config);
    elbv2 = new ElasticLoadBalancingV2Client(config);
    const { TargetGroups = [] } = await elbv2.send(new DescribeTargetGroupsCommand({ Names: [GROUP] }));
    targetGroupArn = TargetGroups[0]!.TargetGroupArn!;
  });

  beforeEach(async () => {
    await sandbox().ecs.configure({ healthDelayMs: HEALTH_DELAY_MS, failNewTasks: false, failNextTasks: 0 });
    await worker().start();
    await steadyState();
  });

  after(async () => {
    for (const client of [ecs, autoScaling, elbv2]) client?.destroy();
    // The next file in this lane finds the simulator as the sandbox seeds it, not with this file's last health delay.
    await sandbox().ecs.configure(SIMULATOR_DEFAULTS);
  });

  // --- reading the sandbox -------------------------------------------------------------------------

  async function runningTasks(): Promise<TaskView[]> {
    return (await serviceTasks('RUNNING')).filter((t) => t.lastStatus !== 'STOPPED');
  }

  async function serviceTasks(desiredStatus: 'RUNNING' | 'STOPPED'): Promise<TaskView[]> {
    const { taskArns = [] } = await ecs.send(new ListTasksCommand({ cluster: CLUSTER, desiredStatus }));
    if (!taskArns.length) return [];
    const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: taskArns }));
    return tasks.filter((t) => t.group === `service:${SERVICE}`).map(view);
  }

  async function healthyIps(): Promise<string[]> {
    const { TargetHealthDescriptions = [] } = await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }));
    return TargetHealthDescriptions.filter((d) => d.TargetHealth?.State === 'healthy')
      .map((d) => d.Target!.Id!)
      .sort();
  }

  async function state(): Promise<SandboxState> {
    const [{ services = [] }, { AutoScalingGroups = [] }, running, healthy] = await Promise.all([
      ecs.send(new DescribeServicesCommand({ cluster: CLUSTER, services: [SERVICE] })),
      autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [GROUP] })),
      runningTasks(),
      healthyIps(),
    ]);
    return {
      serviceDesired: services[0]!.desiredCount!,
      asgDesired: AutoScalingGroups[0]!.DesiredCapacity!,
      running: running.sort((a, b) => a.arn.localeCompare(b.arn)),
      healthyIps: healthy,
    };
  }

  /** Waits until the scheduler has nothing left to do: as many tasks as desired, each one healthy. */
  async function steadyState(): Promise<SandboxState> {
    let seen: SandboxState | undefined;
    await waitUntil(
      async () => {
        seen = await state();
        return (
          seen.running.length === seen.serviceDesired &&
          seen.running.every((t) => t.ip && seen!.healthyIps.includes(t.ip)) &&
          seen.healthyIps.length === seen.running.length
        );
      },
      { timeoutMs: SETTLE_MS, what: () => `the sandbox service to settle (last: ${JSON.stringify(seen && summary(seen))})` },
    );
    return seen!;
  }

  /** Samples the healthy target count until stopped; resolves with the lowest count seen. */
  function sampleHealthyCount(): { stop: () => Promise<{ min: number; samples: number }> } {
    let stopped = false;
    let min = Number.POSITIVE_INFINITY;
    let samples = 0;
    const sampling = (async () => {
      while (!stopped) {
        min = Math.min(min, (await healthyIps()).length);
        samples++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await sampling;
        return { min, samples };
      },
    };
  }

  async function setAsgDesired(desired: number): Promise<void> {
    await autoScaling.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: GROUP, DesiredCapacity: desired }));
  }

  async function finalStatus(): Promise<RunStatus> {
    const { json } = await runbookJson<RunStatus>(['status', WORKFLOW_ID]);
    return json;
  }

  /** The end state every successful run must reach, however it got there. */
  async function assertReplaced(before: SandboxState, result: RollingRestartResult): Promise<SandboxState> {
    const after = await steadyState();
    const oldArns = before.running.map((t) => t.arn);
    assert.deepEqual([...result.oldTaskArns].sort(), oldArns, 'the run recorded exactly the tasks running before it');
    assert.deepEqual([...result.stoppedTaskArns].sort(), oldArns, 'it stopped exactly those');
    assert.equal(after.serviceDesired, before.serviceDesired, 'desired count restored');
    assert.equal(after.running.length, before.running.length);
    for (const task of after.running) assert.ok(!oldArns.includes(task.arn), `pre-run task ${task.arn} still runs`);
    const gone = result.newTaskArns.filter((arn) => !after.running.some((t) => t.arn === arn));
    const goneWhy: string[] = gone.length
      ? ((await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: gone }))).tasks?.map(
          (t) => `${t.taskArn!.split('/').at(-1)} ${t.lastStatus}: ${t.stoppedReason ?? 'no reason'}`,
        ) ?? [])
      : [];
    assert.deepEqual(
      after.running.map((t) => t.arn),
      [...result.newTaskArns].sort(),
      `the tasks running now are the new ones the run reported${goneWhy.length ? ` (reported, gone: ${goneWhy.join('; ')})` : ''}`,
    );
    return after;
  }

  // --- the tests -----------------------------------------------------------------------------------

  it('`runbook describe` lists its inputs and steps', async () => {
    const { exitCode, stdout } = await runbook(['describe', 'rolling-restart']);
    assert.equal(exitCode, 0);
    for (const input of ['cluster', 'service', 'autoScalingGroup', 'targetGroup', 'newTasks', 'healthTimeout', 'restoreAsg'])
      assert.match(stdout, new RegExp(`^\\s+${input} <`, 'm'));
    const steps = [...stdout.matchAll(/^\s+\d+\. (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(steps, [
      'preflight',
      'raise-asg',
      'raise-desired',
      'wait-healthy',
      'stop-old-tasks',
      'restore-desired',
      'restore-asg',
    ]);
    assert.match(stdout, /Checkpoints: none/);
  });

  it('refuses bad input with exit 2 and changes nothing', async () => {
    const before = await state();
    const cases: [string[], RegExp][] = [
      [['--set', 'service=no-such-service'], /service: no active ECS service 'no-such-service'/],
      [['--set', 'newTasks=0'], /newTasks/],
      [['--set', 'newTasks=-2'], /newTasks/],
      // The sandbox's group (max 4, t3.medium) and its container instances hold a few dozen more tasks of 256 CPU units / 256 MiB,
      // how many depends on what earlier tests left running: 500 never fit, and the refusal gives the numbers.
      [
        ['--set', 'newTasks=500'],
        /newTasks: the restart needs room for 500 new tasks of app \(256 CPU units, 256 MiB each\), but with sandbox-app at its maximum of 4 the cluster can place \d+: \d+ in the free room of its container instances/,
      ],
      [['--set', 'cluster=no-such-cluster'], /cluster: /],
      [['--set', 'autoScalingGroup=no-such-group'], /autoScalingGroup: no auto scaling group/],
      [['--set', 'targetGroup=no-such-group'], /targetGroup/],
      [['--set', 'healthTimeout=soon'], /healthTimeout/],
      [['--set', 'servce=typo'], /servce/],
    ];
    for (const [args, message] of cases) {
      const result = await runbook(['start', 'rolling-restart', '--env', 'sandbox', ...args]);
      assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout + result.stderr, message);
      // A refused preflight ends its run a moment after the CLI has reported it; the next case needs the target free.
      await waitClosed(`rolling-restart:sandbox:${args[1]!.startsWith('service=') ? args[1]!.slice('service='.length) : SERVICE}`);
    }
    const unknownEnv = await runbook(['start', 'rolling-restart', '--env', 'nowhere']);
    assert.equal(unknownEnv.exitCode, 2);
    assert.match(unknownEnv.stderr, /unknown environment 'nowhere'/);
    assert.deepEqual(await state(), before);
  });

  it('--dry-run reports the planned counts and changes nothing', async () => {
    await setAsgDesired(2);
    const before = await steadyState();
    const { exitCode, stdout } = await runbook(['start', 'rolling-restart', '--env', 'sandbox', '--dry-run', '--wait']);
    assert.equal(exitCode, 0, stdout);
    const status = await finalStatus();
    assert.equal(status.phase, 'succeeded');
    assert.equal(status.dryRun, true);
    const detail = (step: string) => status.steps.find((s) => s.name === step)?.detail ?? '';
    assert.match(detail('preflight'), /3 tasks running, 3 healthy targets/);
    assert.match(detail('raise-asg'), /^would raise desired capacity of sandbox-app 2 -> 4/);
    assert.match(detail('raise-desired'), /^would raise desired count of app 3 -> 6/);
    assert.match(detail('wait-healthy'), /^would wait until 3 new tasks/);
    assert.match(detail('stop-old-tasks'), /^would stop the 3 tasks/);
    assert.match(detail('restore-desired'), /^would restore desired count of app 6 -> 3/);
    assert.deepEqual(await state(), before);
  });

  it('replaces every task without the healthy count dropping, then restores the desired count', async () => {
    await setAsgDesired(2);
    const before = await steadyState();
    const healthy = sampleHealthyCount();
    const started = Date.now();
    const run = await runbook(['start', 'rolling-restart', '--env', 'sandbox', '--wait']);
    const took = Date.now() - started;
    const after = await steadyState();
    const { min, samples } = await healthy.stop();
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    console.log(`      (run took ${took} ms; ${samples} health samples, lowest healthy count ${min})`);

    const status = await finalStatus();
    assert.equal(status.phase, 'succeeded');
    const result = status.result as RollingRestartResult;
    await assertReplaced(before, result);
    assert.ok(min >= before.healthyIps.length, `healthy targets dropped to ${min} (started at ${before.healthyIps.length})`);
    assert.equal(after.asgDesired, 4, 'the ASG is left at its maximum to scale in by itself (restoreAsg false)');
    assert.deepEqual(result.before, { asgDesired: 2, asgMax: 4, serviceDesired: 3, tasks: 3, healthyTargets: 3 });
    assert.deepEqual(result.after, { asgDesired: 4, serviceDesired: 3, tasks: 3 });
  });

  it('tolerates one new task failing its health checks', async () => {
    const before = await steadyState();
    await sandbox().ecs.configure({ failNextTasks: 1 });
    const run = await runbook(['start', 'rolling-restart', '--env', 'sandbox', '--wait']);
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    const result = (await finalStatus()).result as RollingRestartResult;
    assert.equal(result.toleratedFailures.length, 1);
    assert.match(result.toleratedFailures[0]!.why, /failed ELB health checks/);
    await assertReplaced(before, result);
  });

  it('rolls back when the new tasks fail: new tasks stopped, counts restored, old tasks still serving', async () => {
    await setAsgDesired(2);
    const before = await steadyState();
    await sandbox().ecs.configure({ failNewTasks: true });
    const run = await runbook(['start', 'rolling-restart', '--env', 'sandbox', '--wait']);
    assert.equal(run.exitCode, 1, run.stdout + run.stderr);

    const status = await finalStatus();
    assert.equal(status.phase, 'rolled-back');
    assert.match(status.error ?? '', /new tasks failed/);
    await sandbox().ecs.configure({ failNewTasks: false });
    const after = await steadyState();
    assert.deepEqual(
      after.running.map((t) => t.arn),
      before.running.map((t) => t.arn),
      'the old tasks still run',
    );
    assert.deepEqual(after.healthyIps, before.healthyIps, 'and still serve');
    assert.equal(after.serviceDesired, before.serviceDesired);
    assert.equal(after.asgDesired, 2, 'the ASG is put back on rollback');
    const started = (await serviceTasks('STOPPED')).filter((t) => !before.running.some((old) => old.arn === t.arn));
    assert.ok(started.length >= 2, 'new tasks were started and stopped');
  });

  it('finishes with the same end state when the worker is SIGKILLed at each step boundary and mid-wait', async function () {
    this.timeout(300_000);
    await setAsgDesired(2);
    const before = await steadyState();
    // Long enough that the wait still runs after the first kills (each costs the server's ~10 s sticky timeout).
    await sandbox().ecs.configure({ healthDelayMs: 40_000 });
    const start = await runbook(['start', 'rolling-restart', '--env', 'sandbox']);
    assert.equal(start.exitCode, 0, start.stdout + start.stderr);
    const killAndRestart = async () => {
      await worker().kill('SIGKILL');
      await worker().start();
    };

    // Read from AWS and the server, not by query: a query waits for a worker, and the worker is what we kill.
    await waitUntil(async () => (await state()).asgDesired === 4, { timeoutMs: 30_000, what: 'raise-asg to take effect' });
    await killAndRestart();
    await waitUntil(async () => (await state()).serviceDesired === before.serviceDesired * 2, {
      timeoutMs: 60_000,
      what: 'raise-desired to take effect',
    });
    await killAndRestart();
    await waitUntil(
      async () => (await pendingActivities()).includes('waitForHealthyNewTasks') && (await runningTasks()).length > before.running.length,
      {
        timeoutMs: 60_000,
        what: 'the wait for new tasks to be under way',
      },
    );
    await killAndRestart();
    const oldArns = before.running.map((t) => t.arn);
    await waitUntil(async () => (await serviceTasks('STOPPED')).some((t) => oldArns.includes(t.arn)), {
      timeoutMs: 120_000,
      what: 'the old tasks to start stopping',
    });
    await killAndRestart();

    const status = await waitForStatus(WORKFLOW_ID, (s) => s.phase !== 'running', 120_000);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    await assertReplaced(before, status.result as RollingRestartResult);
    assert.equal((await state()).asgDesired, 4);
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

async function pendingActivities(): Promise<string[]> {
  const { raw } = await (await temporalClient()).workflow.getHandle(WORKFLOW_ID).describe();
  return (raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? '');
}

function view(task: Task): TaskView {
  const ip = task.attachments?.[0]?.details?.find((d) => d.name === 'privateIPv4Address')?.value;
  return { arn: task.taskArn!, ip, lastStatus: task.lastStatus! };
}

function summary(state: SandboxState) {
  return { desired: state.serviceDesired, running: state.running.length, healthy: state.healthyIps.length };
}
