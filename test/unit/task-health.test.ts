/**
 * The wait for healthy new tasks heartbeats its progress in the shared shape
 * (src/progress.ts), so `runbook watch` and `status` show "2 / 4 tasks healthy"
 * with a bar, like the copy steps. The activity runs against stub ECS and ELB clients.
 */
import assert from 'node:assert/strict';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeTasksCommand, ListTasksCommand } from '@aws-sdk/client-ecs';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { AwsClientFactory } from '../../src/activities/aws.js';
import {
  createTaskHealthActivities,
  waitHeartbeat,
  type HealthyNewTasks,
  type NewTasksWait,
  type WaitHeartbeat,
} from '../../src/activities/task-health.js';
import { formatProgress, fromDetails, progressBar } from '../../src/cli/progress.js';

/** A service of one old task and four new ones; each poll turns `healthyPerPoll` more new tasks healthy in the target group. */
function stubAws(healthyPerPoll: number): AwsClientFactory {
  const tasks = ['old-1', 'new-1', 'new-2', 'new-3', 'new-4'].map((arn, i) => ({
    taskArn: arn,
    group: 'service:app',
    lastStatus: 'RUNNING',
    desiredStatus: 'RUNNING',
    startedAt: new Date(Date.UTC(2026, 0, 1, 0, i)),
    attachments: [{ type: 'ElasticNetworkInterface', details: [{ name: 'privateIPv4Address', value: `10.0.0.${i}` }] }],
  }));
  let polls = 0;
  const ecs = {
    async send(command: unknown) {
      if (command instanceof ListTasksCommand) return { taskArns: tasks.map((t) => t.taskArn) };
      if (command instanceof DescribeTasksCommand) return { tasks: tasks.filter((t) => command.input.tasks?.includes(t.taskArn)) };
      throw new Error(`unexpected ECS call ${String(command)}`);
    },
  };
  const elbv2 = {
    async send(command: unknown) {
      if (!(command instanceof DescribeTargetHealthCommand)) throw new Error(`unexpected ELB call ${String(command)}`);
      const healthy = Math.min(4, ++polls * healthyPerPoll);
      return {
        TargetHealthDescriptions: tasks.map((_, i) => ({
          Target: { Id: `10.0.0.${i}` },
          TargetHealth: { State: i === 0 || i <= healthy ? 'healthy' : 'initial' },
        })),
      };
    },
  };
  return (() => ({ ecs, elbv2 })) as unknown as AwsClientFactory;
}

const wait: NewTasksWait = {
  aws: { region: 'us-east-1' },
  cluster: 'main',
  service: 'app',
  targetGroupArn: 'arn:tg/app',
  oldTaskArns: ['old-1'],
  count: 4,
  deadline: new Date(Date.now() + 60_000).toISOString(),
  toleratedFailures: 1,
};

describe('task-health wait progress', () => {
  it('heartbeats tasks healthy of wanted, as the CLI reads and draws it', async () => {
    const env = new MockActivityEnvironment();
    const beats: WaitHeartbeat[] = [];
    env.on('heartbeat', (details: WaitHeartbeat) => beats.push(details));
    const { waitForHealthyNewTasks } = createTaskHealthActivities({ aws: stubAws(2) });
    const result = (await env.run(waitForHealthyNewTasks, wait)) as HealthyNewTasks;

    assert.deepEqual(result.newTaskArns, ['new-1', 'new-2', 'new-3', 'new-4']);
    // The first poll found two of four healthy; the heartbeat also keeps what a retried attempt resumes from.
    const first = beats[0]!;
    assert.deepEqual(first.progress, { done: 2, total: 4, unit: 'tasks healthy', level: true, note: '2 starting' });
    assert.deepEqual(first.newTaskArns, ['new-1', 'new-2', 'new-3', 'new-4']);
    assert.equal(first.polls, 1);

    const seen = fromDetails(first)!;
    const line = formatProgress({ activity: 'waitForHealthyNewTasks', attempt: 1, ...seen }, '2026-01-01T00:00:00.000Z');
    assert.equal(line, '2 / 4 tasks healthy (50%) · 2 starting');
    assert.equal(progressBar(seen, 10), '▕█████░░░░░▏');
  });

  it('says so before any poll succeeded, and counts failures in the note', () => {
    const none = waitHeartbeat({ newTaskArns: [], failures: [], polls: 0, delayMs: 1000 }, { count: 3 }, undefined);
    assert.deepEqual(none.progress, { done: 0, total: 3, unit: 'tasks healthy', level: true });
    const failing = waitHeartbeat(
      { newTaskArns: ['a', 'b'], failures: [{ arn: 'c', why: 'stopped' }], polls: 4, delayMs: 1000 },
      { count: 3 },
      { progress: { newTaskArns: ['a', 'b'], failures: [], polls: 4, delayMs: 1000 }, healthy: [], starting: [] },
    );
    assert.deepEqual(failing.progress, { done: 0, total: 3, unit: 'tasks healthy', level: true, note: '1 failed' });
  });
});
