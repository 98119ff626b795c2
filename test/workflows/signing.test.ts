/**
 * Signed starts and decisions, end to end on the workflow tier's dev server:
 * the real `runbook` CLI signing with ssh-keygen, a real worker (this
 * process) with the real resolve and verify activities and the ledger fixture
 * runbook, and an environment whose signers file holds alice and bob.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config.js';
import {
  TASK_QUEUE,
  approveSignal,
  runWorkflowId,
  type ApproveArgs,
  type Decision,
  type Refusal,
  type RunStatus,
} from '../../src/messages.js';
import { loadPlugins } from '../../src/plugins.js';
import { createWorker } from '../../src/worker.js';
import { statusWhen } from '../helpers/stub-worker.js';
import { workflowTier } from './setup.js';

const cliPath = fileURLToPath(new URL('../../src/client.js', import.meta.url));
const fixturePlugin = fileURLToPath(new URL('../fixtures/plugin.js', import.meta.url));

describe('signed starts and decisions (alice and bob in the signers file)', function () {
  this.timeout(120_000);
  let dir: string;
  let configPath: string;
  let worker: Worker;
  let running: Promise<void>;
  const key = (name: string) => join(dir, 'keys', name);

  before(async () => {
    const tier = workflowTier();
    dir = join(tier.dir, 'signing');
    mkdirSync(join(dir, 'keys'), { recursive: true });
    const signers: string[] = [];
    for (const name of ['alice', 'bob']) {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key(name)]);
      signers.push(`${name}@example.com ${readFileSync(`${key(name)}.pub`, 'utf8').trim()}`);
    }
    writeFileSync(join(dir, 'allowed_signers'), `${signers.join('\n')}\n`);
    configPath = join(dir, 'runbooks.config.yaml');
    writeFileSync(
      configPath,
      stringify({
        plugins: [fixturePlugin],
        environments: {
          guarded: {
            protected: true,
            aws: { region: 'us-east-1' },
            approvals: { approvers: ['alice@example.com', 'bob@example.com'], signers: 'allowed_signers' },
          },
        },
      }),
    );
    process.env.FIXTURE_LEDGER_DIR = join(dir, 'ledger');
    ({ worker } = await createWorker({
      address: tier.temporalAddress,
      namespace: 'default',
      environments: loadConfig(configPath),
      plugins: await loadPlugins([fixturePlugin]),
      workflowBundlePath: tier.workflowBundlePath,
    }));
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
  });

  const cli = async (args: string[], env: Record<string, string> = {}) => {
    const result = await execa(process.execPath, [cliPath, ...args], {
      env: {
        TEMPORAL_ADDRESS: workflowTier().temporalAddress,
        RUNBOOK_CONFIG: configPath,
        RUNBOOK_USER: 'someone',
        SSH_AUTH_SOCK: '',
        RUNBOOK_SIGNING_KEY: '',
        ...env,
      },
      extendEnv: true,
      reject: false,
      timeout: 90_000,
    });
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  };
  const status = (workflowId: string, predicate: (s: RunStatus) => boolean = () => true) =>
    statusWhen(workflowTier().env.client.workflow.getHandle(workflowId), predicate, 30_000);
  const refusedWith = (s: RunStatus, why: RegExp): Refusal | undefined => s.refusals.find((r) => why.test(r.reason));

  /** The approve payloads a run received, as its history holds them. */
  async function approvePayloads(workflowId: string, runId: string): Promise<ApproveArgs[]> {
    const history = await workflowTier().env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    return (history.events ?? [])
      .map((e) => e.workflowExecutionSignaledEventAttributes)
      .filter((a) => a?.signalName === 'approve')
      .map((a) => defaultPayloadConverter.fromPayload<ApproveArgs>(a!.input!.payloads![0]!));
  }

  it('alice starts; bob cannot be claimed with her key; unsigned signals are refused and listed; bob approves; his signature does not carry over to another run', async () => {
    const name = `books-${process.pid}`;
    const workflowId = runWorkflowId('ledger-swap', 'guarded', name);

    const unsigned = await cli(['start', 'ledger-swap', '--env', 'guarded', '--set', `name=${name}`]);
    assert.equal(unsigned.exitCode, 2, unsigned.stderr);
    assert.match(unsigned.stderr, /guarded requires signed starts: pass --key/);

    const started = await cli([
      '--json',
      'start',
      'ledger-swap',
      '--env',
      'guarded',
      '--set',
      `name=${name}`,
      '--key',
      key('alice'),
      '--wait',
    ]);
    assert.equal(started.exitCode, 0, started.stderr);
    const first = JSON.parse(started.stdout.trim().split('\n').at(-1)!) as { runId: string; status: RunStatus };
    assert.equal(first.status.phase, 'waiting');
    assert.equal(first.status.startedBy, 'alice@example.com', 'the key, not RUNBOOK_USER, says who started');
    assert.equal(first.status.policy?.signed, true);

    const claimed = await cli(['approve', workflowId, '--checkpoint', 'delete-old', '--as', 'bob@example.com', '--key', key('alice')]);
    assert.equal(claimed.exitCode, 2, claimed.stderr);
    assert.match(claimed.stderr, /refused: decision claims to be by 'bob@example.com' but is signed with the key of alice@example.com/);
    const self = await cli(['approve', workflowId, '--checkpoint', 'delete-old', '--key', key('alice')]);
    assert.equal(self.exitCode, 2, self.stderr);
    assert.match(self.stderr, /refused: 'alice@example.com' started this run and guarded requires approval by someone else/);

    // What the Temporal UI or `temporal workflow signal` sends: a name and no signature.
    const handle = workflowTier().env.client.workflow.getHandle(workflowId);
    await handle.signal(approveSignal, { checkpoint: 'delete-old', by: 'bob@example.com' });
    const afterUi = await status(workflowId, (s) => Boolean(refusedWith(s, /^unsigned decision/)));
    assert.equal(refusedWith(afterUi, /^unsigned decision/)?.by, 'bob@example.com');
    assert.match(refusedWith(afterUi, /^unsigned decision/)!.reason, /the Temporal UI cannot decide here/);
    assert.equal(afterUi.phase, 'waiting');
    assert.deepEqual(afterUi.decisions, []);

    const approved = await cli([
      '--json',
      'approve',
      workflowId,
      '--checkpoint',
      'delete-old',
      '--key',
      key('bob'),
      '--comment',
      'copy checked',
    ]);
    assert.equal(approved.exitCode, 0, approved.stderr);
    assert.equal((JSON.parse(approved.stdout) as Decision).by, 'bob@example.com');
    const done = await status(workflowId, (s) => s.phase === 'succeeded');
    assert.deepEqual(
      done.decisions.map((d) => [d.checkpoint, d.decision, d.by, d.waitId]),
      [['delete-old', 'approved', 'bob@example.com', 'delete-old#1']],
    );

    // Bob's signed approval, taken from the first run's history and replayed on a second run of the same target.
    const signed = (await approvePayloads(workflowId, first.runId)).find((p) => p.requestId === done.decisions[0]!.requestId);
    assert.ok(signed, "the first run received bob's signed approval");
    const again = await cli([
      '--json',
      'start',
      'ledger-swap',
      '--env',
      'guarded',
      '--set',
      `name=${name}`,
      '--key',
      key('alice'),
      '--wait',
    ]);
    assert.equal(again.exitCode, 0, again.stderr);
    const second = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { runId: string; status: RunStatus };
    assert.notEqual(second.runId, first.runId);
    assert.equal(second.status.waitingFor?.waitId, 'delete-old#1', 'the same wait ID as the first run: only the run tells them apart');

    await handle.signal(approveSignal, { ...signed, requestId: 'replay-as-is' });
    await handle.signal(approveSignal, { ...signed, runId: second.runId, requestId: 'replay-rebound' });
    await handle.signal(approveSignal, { ...signed, runId: second.runId, requestId: 'replay-again' });
    const replayed = await status(workflowId, (s) => s.refusals.filter((r) => r.requestId?.startsWith('replay-')).length === 3);
    assert.match(replayed.refusals.find((r) => r.requestId === 'replay-again')!.reason, /this signature was already used/);
    assert.match(
      replayed.refusals.find((r) => r.requestId === 'replay-as-is')!.reason,
      new RegExp(`the decision is for run ${first.runId}, but this is run ${second.runId}`),
    );
    assert.match(replayed.refusals.find((r) => r.requestId === 'replay-rebound')!.reason, /does not verify over this decision/);
    assert.equal(replayed.phase, 'waiting');
    assert.deepEqual(replayed.decisions, []);

    const rejected = await cli(['reject', workflowId, '--checkpoint', 'delete-old', '--key', key('bob'), '--reason', 'not twice']);
    assert.equal(rejected.exitCode, 0, rejected.stderr);
    const end = await status(workflowId, (s) => s.phase !== 'waiting' && s.phase !== 'running');
    assert.equal(end.phase, 'rolled-back');
    assert.equal(end.decisions[0]?.by, 'bob@example.com');
  });

  it('the worker refuses a start with no signature, whatever the starter claims', async () => {
    const { client } = workflowTier().env;
    const name = `raw-${process.pid}`;
    const handle = await client.workflow.start('ledgerSwap', {
      taskQueue: TASK_QUEUE,
      workflowId: runWorkflowId('ledger-swap', 'guarded', name),
      args: [
        {
          runbook: 'ledger-swap',
          env: 'guarded',
          params: { name },
          dryRun: false,
          startedBy: 'bob@example.com',
          requestId: `raw-${Date.now()}`,
        },
      ],
    });
    await assert.rejects(handle.result());
    const s = await status(handle.workflowId);
    assert.equal(s.errorType, 'InvalidInput');
    assert.match(s.error ?? '', /input.signature: unsigned start: this environment requires starts signed/);
  });
});
