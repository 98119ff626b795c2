/**
 * The worker is the trust boundary: each attack here is tried as an operator
 * would (a raw start or signal from Temporal's own tools, a second config file,
 * a forged input) against the real worker process, and each must leave the
 * worker's rules in force and nothing changed.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { join } from 'node:path';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { TASK_QUEUE, approveSignal, type RunStatus } from '../src/messages.js';
import { readRun } from '../src/cli/run-status.js';
import { sandbox, testStack } from './setup.js';
import { runbook } from './helpers/cli.js';
import { temporalClient, waitForStatus } from './helpers/wait.js';

let counter = 0;
const freshName = (label: string) => `${label}-${process.pid}-${++counter}`;
const ledgerEffects = (name: string) => {
  const file = join(testStack().ledgerDir, name, 'events.log');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
};

/** Starts a workflow the way `temporal workflow start` does: whatever input the starter likes. */
async function rawStart(workflowType: string, workflowId: string, input: unknown): Promise<void> {
  const client = await temporalClient();
  await client.workflow.start(workflowType, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
}

async function endsRefused(workflowId: string, why: RegExp): Promise<RunStatus> {
  const client = await temporalClient();
  const handle = client.workflow.getHandle(workflowId);
  await assert.rejects(handle.result());
  const { status } = await readRun(client, workflowId);
  assert.equal(status.phase, 'failed', JSON.stringify(status));
  assert.equal(status.errorType, 'InvalidInput');
  assert.match(status.error ?? '', why);
  assert.equal(status.steps.find((s) => s.name === 'resolve')?.status, 'failed');
  assert.ok(
    status.steps.filter((s) => s.name !== 'resolve').every((s) => s.status === 'skipped'),
    'no step after resolve ran',
  );
  return status;
}

describe('the worker is the trust boundary', () => {
  it('refuses a raw start that carries its own policy, and runs nothing', async () => {
    const name = freshName('forged-policy');
    const id = `ledger-swap:guarded:${name}`;
    const forged = {
      runbook: 'ledger-swap',
      env: 'guarded',
      target: name,
      startedBy: 'mallory',
      dryRun: false,
      policy: { approvers: ['*'], allowSelfApproval: true, timeoutMs: 86_400_000_000 },
      params: { name },
    };
    const { temporalCli, temporalAddress } = testStack();
    const started = await execa(
      temporalCli,
      [
        'workflow',
        'start',
        '--address',
        temporalAddress,
        '--task-queue',
        TASK_QUEUE,
        '--type',
        'ledgerSwap',
        '--workflow-id',
        id,
        '--input',
        JSON.stringify(forged),
      ],
      { reject: false },
    );
    assert.equal(started.exitCode, 0, started.stderr);
    await endsRefused(id, /input\.(policy|target): not accepted from the starter/);
    assert.deepEqual(ledgerEffects(name), [], 'the ledger was not touched');
  });

  it('refuses an AWS connection smuggled into the parameters, and moto keeps its counts', async () => {
    const ecs = new ECSClient({ endpoint: testStack().awsEndpoint, region: 'us-east-1' });
    const defaults = (sandbox().environment.runbooks as Record<string, { cluster: string; service: string }>)['rolling-restart']!;
    const desired = async () =>
      (await ecs.send(new DescribeServicesCommand({ cluster: defaults.cluster, services: [defaults.service] }))).services![0]!.desiredCount;
    const before = await desired();
    const id = `rolling-restart:sandbox:${defaults.service}`;
    await rawStart('rollingRestart', id, {
      runbook: 'rolling-restart',
      env: 'sandbox',
      params: { ...defaults, aws: { region: 'us-east-1', endpoint: 'http://127.0.0.1:1' } },
      dryRun: false,
      startedBy: 'mallory',
      requestId: 'forged-aws',
    });
    await endsRefused(id, /Unrecognized key\(s\) in object: 'aws'/);
    assert.equal(await desired(), before, 'the desired count did not change');
  });

  it('refuses a workflow ID that is not <runbook>:<env>:<target>, an unknown environment, and a runbook run as another workflow', async () => {
    const name = freshName('mismatch');
    const input = (env: string) => ({
      runbook: 'ledger-swap',
      env,
      params: { name },
      dryRun: false,
      startedBy: 'mallory',
      requestId: `r-${env}`,
    });

    await rawStart('ledgerSwap', `ledger-swap:sandbox:someone-else-${name}`, input('sandbox'));
    await endsRefused(
      `ledger-swap:sandbox:someone-else-${name}`,
      new RegExp(
        `workflow ID 'ledger-swap:sandbox:someone-else-${name}' does not match the run: its ID must be 'ledger-swap:sandbox:${name}'`,
      ),
    );

    await rawStart('ledgerSwap', `ledger-swap:nowhere:${name}`, input('nowhere'));
    await endsRefused(`ledger-swap:nowhere:${name}`, /input\.env: 'nowhere' is not an environment this worker knows/);

    await rawStart('bucketSwap', `ledger-swap:sandbox:${name}-as-bucket`, input('sandbox'));
    await endsRefused(`ledger-swap:sandbox:${name}-as-bucket`, /ledger-swap runs as workflow ledgerSwap, not bucketSwap/);
    assert.deepEqual(ledgerEffects(name), []);
  });

  it("applies the worker's policy to a run started through a looser config file", async () => {
    const stack = testStack();
    const config = parse(readFileSync(stack.configPath, 'utf8')) as { environments: Record<string, Record<string, unknown>> };
    // A copy of `guarded` that is no longer protected and lets anyone, even the requester, approve.
    config.environments.guarded = {
      ...config.environments.guarded,
      protected: false,
      approvals: { approvers: ['*'], allowSelfApproval: true, timeout: '1000d' },
    };
    const loosePath = join(stack.dir, 'loose.config.yaml');
    writeFileSync(loosePath, stringify(config));
    const loose = { env: { RUNBOOK_CONFIG: loosePath } };

    const name = freshName('loose');
    const id = `ledger-swap:guarded:${name}`;
    const started = await runbook(['start', 'ledger-swap', '--env', 'guarded', '--set', `name=${name}`, '--wait'], {
      as: 'alice',
      ...loose,
    });
    assert.equal(started.exitCode, 0, started.stderr);
    const waiting = await waitForStatus(id, (s) => s.phase === 'waiting');
    assert.deepEqual(waiting.waitingFor?.approvers, ['alice', 'bob'], "the worker's approvers");
    assert.equal(waiting.waitingFor?.allowSelfApproval, false);
    assert.equal(waiting.policy?.protected, true);
    assert.match(waiting.envHash ?? '', /^[0-9a-f]{64}$/);
    assert.ok(new Date(waiting.waitingFor!.timeoutAt).getTime() - Date.now() < 25 * 3_600_000, "the worker's 24h timeout, not 1000d");

    const self = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'Alice ', ...loose });
    assert.equal(self.exitCode, 2);
    assert.match(self.stderr, /'alice' started this run and guarded requires approval by someone else/);
    const handle = (await temporalClient()).workflow.getHandle(id);
    await handle.signal(approveSignal, { checkpoint: 'delete-old', by: 'ALICE', requestId: 'self-by-signal' });
    const refused = await waitForStatus(id, (s) => s.refusals.some((r) => r.requestId === 'self-by-signal'));
    assert.equal(refused.phase, 'waiting');

    const bob = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'bob', ...loose });
    assert.equal(bob.exitCode, 0, bob.stderr);
    const done = await waitForStatus(id, (s) => s.phase === 'succeeded');
    assert.deepEqual(
      done.decisions.map((d) => [d.checkpoint, d.decision, d.by, d.waitId]),
      [['delete-old', 'approved', 'bob', 'delete-old#1']],
    );
  });

  it('survives malformed, oversized and junk signals, lists them, and is then approved', async function () {
    this.timeout(180_000);
    const name = freshName('junk');
    const id = `ledger-swap:sandbox:${name}`;
    const started = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--wait']);
    assert.equal(started.exitCode, 0, started.stderr);
    const handle = (await temporalClient()).workflow.getHandle(id);

    await handle.signal('approve', { by: 1, checkpoint: 'delete-old', requestId: 'typed' });
    // 3 MB: above the server's payload limit (it may refuse the signal outright) and far above the workflow's 2 KB.
    const huge = await handle
      .signal('approve', { by: 'bob', checkpoint: 'delete-old', comment: 'x'.repeat(3 * 2 ** 20), requestId: 'huge' })
      .then(
        () => null,
        (err: Error) => err,
      );
    if (huge) console.log(`      the server itself refused the 3 MB signal: ${huge.message.slice(0, 160)}`);
    for (let i = 0; i < 50; i++) await handle.signal('reject', i % 2 ? ['junk', i] : { reason: 12, by: { nested: true } });
    await handle.signal('approve', { by: 'bob', checkpoint: 'delete-old', comment: 'y'.repeat(2049), requestId: 'long-comment' });

    const status = await waitForStatus(id, (s) => s.refusals.some((r) => r.requestId === 'long-comment'));
    assert.equal(status.phase, 'waiting', 'the run still waits at its checkpoint');
    assert.equal(status.refusals.length, 20, 'the newest 20 refusals are kept');
    assert.ok(status.refusalsDropped >= 31, `older refusals are counted (${status.refusalsDropped})`);
    assert.match(status.refusals.at(-1)!.reason, /comment is 2049 characters, at most 2048 are accepted/);
    assert.ok(JSON.stringify(status).length < 64 * 1024, 'the status stays small');

    const approved = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'bob' });
    assert.equal(approved.exitCode, 0, approved.stderr);
    await waitForStatus(id, (s) => s.phase === 'succeeded');
  });

  it('records who cancelled a run', async () => {
    const name = freshName('cancel');
    const id = `ledger-swap:sandbox:${name}`;
    const started = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--wait']);
    assert.equal(started.exitCode, 0, started.stderr);
    const cancelled = await runbook(['cancel', id, '--wait', '--reason', 'wrong ledger'], { as: 'carol' });
    assert.equal(cancelled.exitCode, 0, cancelled.stderr);
    const { status } = await readRun(await temporalClient(), id);
    assert.equal(status.phase, 'cancelled');
    assert.equal(status.cancelledBy?.by, 'carol');
    assert.match(status.error ?? '', /cancelled by carol \(wrong ledger\)/);
  });

  it("replays a run of today's code recorded just now (resolve step, wait IDs, refused and accepted signals)", async () => {
    const name = `replay-${process.pid}`;
    const id = `ledger-swap:sandbox:${name}`;
    const started = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--wait']);
    assert.equal(started.exitCode, 0, started.stderr);
    const handle = (await temporalClient()).workflow.getHandle(id);
    await handle.signal('approve', { by: 7 });
    assert.equal((await runbook(['approve', id, '--checkpoint', 'delete-old', '--comment', 'ok'])).exitCode, 0);
    await waitForStatus(id, (s) => s.phase === 'succeeded');
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: { codePath: testStack().workflowBundlePath } }, history, id);
    // RUNBOOK_RECORD_HISTORIES=1 refreshes the committed copy that guards later changes.
    if (process.env.RUNBOOK_RECORD_HISTORIES)
      writeFileSync(
        fileURLToPath(new URL('../../test/histories/ledger-swap-resolved-approved.json', import.meta.url)),
        historyToJSON(history),
      );
  });
});
