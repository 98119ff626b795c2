/** rolling-restart's judgements, as pure functions: which tasks count as healthy, when a deployment is in progress, how AWS errors map. */
import assert from 'node:assert/strict';
import type { ApplicationFailure } from '@temporalio/common';
import { awsFailure } from '../../src/activities/aws.js';
import { isDeploymentInProgress, type ServiceTask } from '../../src/activities/ecs.js';
import { assessNewTasks, type WaitProgress } from '../../src/activities/task-health.js';

describe('rolling-restart, its judgements', () => {
  const task = (arn: string, ip: string, lastStatus = 'RUNNING'): ServiceTask => ({
    arn,
    ip,
    lastStatus,
    desiredStatus: lastStatus === 'STOPPED' ? 'STOPPED' : 'RUNNING',
  });
  const fresh: WaitProgress = { newTaskArns: [], failures: [], polls: 0, delayMs: 1000 };

  it('counts a new task healthy only when it runs and its address is healthy; old tasks never count', () => {
    const judged = assessNewTasks({
      progress: fresh,
      oldTaskArns: ['old'],
      current: [task('old', '10.0.0.1'), task('a', '10.0.0.2'), task('b', '10.0.0.3'), task('c', '10.0.0.4', 'PENDING')],
      stopped: [],
      targets: [
        { id: '10.0.0.1', state: 'healthy' },
        { id: '10.0.0.2', state: 'healthy' },
        { id: '10.0.0.3', state: 'initial' },
        { id: '10.0.0.4', state: 'healthy' },
      ],
    });
    assert.deepEqual(
      judged.healthy.map((t) => t.arn),
      ['a'],
    );
    assert.deepEqual(
      judged.starting.map((t) => t.arn),
      ['b', 'c'],
    );
    assert.deepEqual(judged.progress.newTaskArns, ['a', 'b', 'c']);
    assert.deepEqual(judged.progress.failures, []);
  });

  it('counts each failing new task once, however often it flaps, and a recovered one as healthy', () => {
    const poll = (progress: WaitProgress, state: string) =>
      assessNewTasks({ progress, oldTaskArns: [], current: [task('a', '10.0.0.2')], stopped: [], targets: [{ id: '10.0.0.2', state }] });
    const first = poll(fresh, 'unhealthy');
    const again = poll(first.progress, 'unhealthy');
    const recovered = poll(again.progress, 'healthy');
    assert.equal(again.progress.failures.length, 1);
    assert.deepEqual(
      recovered.healthy.map((t) => t.arn),
      ['a'],
    );
    const stopped = assessNewTasks({
      progress: recovered.progress,
      oldTaskArns: [],
      current: [],
      stopped: [{ ...task('b', '10.0.0.3', 'STOPPED'), stoppedReason: 'Essential container exited' }],
      targets: [],
    });
    assert.deepEqual(
      stopped.progress.failures.map((f) => [f.arn, f.why]),
      [
        ['a', 'unhealthy in the target group (10.0.0.2)'],
        ['b', 'stopped: Essential container exited'],
      ],
    );
  });

  it('sees a deployment in progress when an old deployment is still active beside the primary one', () => {
    assert.equal(isDeploymentInProgress({ deployments: [{ status: 'PRIMARY', rolloutState: 'IN_PROGRESS' }] }), false);
    assert.equal(isDeploymentInProgress({ deployments: [{ status: 'PRIMARY' }, { status: 'ACTIVE' }] }), true);
  });

  it('maps AWS errors: missing resources to InvalidInput naming the field, throttling retried, denial not', () => {
    const awsError = (name: string, status = 400) =>
      Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status } });
    const missing = awsFailure(awsError('ClusterNotFoundException'), 'describe service app') as ApplicationFailure;
    assert.equal(missing.type, 'InvalidInput');
    assert.equal(missing.nonRetryable, true);
    assert.match(missing.message, /^cluster: /);
    const throttled = awsFailure(awsError('ThrottlingException'), 'list tasks') as ApplicationFailure;
    assert.equal(throttled.nonRetryable, false);
    assert.equal((awsFailure(awsError('InternalError', 503), 'x') as ApplicationFailure).nonRetryable, false);
    assert.equal((awsFailure(awsError('AccessDeniedException', 403), 'x') as ApplicationFailure).nonRetryable, true);
  });
});
