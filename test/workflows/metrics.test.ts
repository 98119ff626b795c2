/**
 * Prometheus metrics, scraped while runs are open: the runbook metrics that
 * workflow code emits (src/workflows/engine/metrics.ts) next to the SDK's own
 * worker metrics, and `runbook worker --metrics` serving them from a real worker process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { metricsBindAddress } from '../../src/cli/worker.js';
import { TASK_QUEUE, rejectSignal } from '../../src/messages.js';
import { freePorts } from '../../src/stack/ports.js';
import { finishProbe } from '../fixtures/metrics-probe-runbook.js';
import { runbookInput, statusWhen, withStubWorker } from '../helpers/stub-worker.js';
import { waitUntil } from '../helpers/wait-until.js';
import { workflowTier } from './setup.js';

const cliPath = fileURLToPath(new URL('../../src/client.js', import.meta.url));
const fixturePlugin = fileURLToPath(new URL('../fixtures/plugin.js', import.meta.url));

async function scrape(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The sample lines of one metric whose labels include all of `labels`. */
function samples(text: string, metric: string, labels: Record<string, string> = {}): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${metric}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)));
}

describe('metrics', () => {
  it('serves runbook metrics from workflow code beside the SDK worker metrics, during a run', async () => {
    const { metricsAddress } = workflowTier();
    await withStubWorker({}, async ({ client, taskQueue }) => {
      const handle = await client.workflow.start('metricsProbe', {
        taskQueue,
        workflowId: `metrics-probe-${Date.now()}`,
        args: [{ runbook: 'probe', env: 'metrics-test' }],
      });
      const run = { runbook: 'probe', env: 'metrics-test' };
      let text = '';
      await waitUntil(async () => samples((text = await scrape(metricsAddress)), 'runbook_runs_ended_total', run).length > 0, {
        timeoutMs: 20_000,
        what: () =>
          `runbook metrics on ${metricsAddress}; scraped:\n${text
            .split('\n')
            .filter((l) => l.includes('runbook'))
            .join('\n')}`,
      });
      assert.match(samples(text, 'runbook_runs_started_total', { ...run, dry_run: 'false' })[0] ?? '', / 1$/);
      assert.match(samples(text, 'runbook_runs_ended_total', { ...run, phase: 'rolled-back' })[0] ?? '', / 1$/);
      assert.match(samples(text, 'runbook_compensation_runs_total', { ...run, outcome: 'undone' })[0] ?? '', / 1$/);
      assert.match(samples(text, 'runbook_step_duration_seconds_sum', { ...run, step: 'copy', status: 'done' })[0] ?? '', / 1\.5$/);
      assert.match(
        samples(text, 'runbook_step_duration_seconds_bucket', { ...run, le: '5' })[0] ?? '',
        / 1$/,
        'buckets fit step durations',
      );
      assert.match(
        samples(text, 'runbook_checkpoint_wait_seconds_bucket', { ...run, le: '60' })[0] ?? '',
        / 1$/,
        'buckets fit checkpoint waits',
      );
      assert.match(
        samples(text, 'runbook_checkpoint_wait_seconds_sum', { ...run, checkpoint: 'delete-old', decision: 'approved' })[0] ?? '',
        / 42$/,
      );
      assert.ok(
        samples(text, 'runbook_runs_started_total', { workflowType: 'metricsProbe', taskQueue, namespace: 'default' }).length,
        'the SDK tags them with workflow type and task queue',
      );
      assert.ok(
        text.split('\n').some((line) => line.startsWith('temporal_') && line.includes(`"${taskQueue}"`)),
        'the SDK worker metrics are served too',
      );
      await handle.signal(finishProbe);
      await handle.result();
    });
  });

  it('`runbook worker --metrics` serves the SDK worker metrics while it runs a runbook', async function () {
    this.timeout(120_000);
    const { temporalAddress, workflowBundlePath, env: testEnv, dir } = workflowTier();
    const [port] = await freePorts(1);
    const address = `127.0.0.1:${port}`;
    // A real worker enforces its own environments file: one environment is enough for this run.
    const configPath = join(dir, 'metrics.config.yaml');
    writeFileSync(
      configPath,
      'environments:\n  test:\n    aws: { region: us-east-1 }\n    approvals: { approvers: ["*"], allowSelfApproval: true }\n',
    );
    const name = `metrics-${Date.now()}`;
    const worker = execa(process.execPath, [cliPath, 'worker', '--metrics', address], {
      cwd: dir,
      env: {
        TEMPORAL_ADDRESS: temporalAddress,
        RUNBOOK_WORKFLOW_BUNDLE: workflowBundlePath,
        RUNBOOK_PLUGINS: fixturePlugin,
        FIXTURE_LEDGER_DIR: mkdtempSync(join(dir, 'ledger-')),
        RUNBOOK_CONFIG: configPath,
      },
      reject: false,
    });
    let output = '';
    worker.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    worker.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitUntil(() => output.includes('worker polling'), {
        timeoutMs: 60_000,
        what: () => `the worker to start; it printed:\n${output}`,
      });
      assert.match(output, new RegExp(`metrics on http://${address}/metrics`));
      const handle = await testEnv.client.workflow.start('ledgerSwap', {
        taskQueue: TASK_QUEUE,
        workflowId: `ledger-swap:test:${name}`,
        args: [runbookInput('ledger-swap', { name, items: 2, slowMs: 0 })],
      });
      await statusWhen(handle, (s) => s.phase === 'waiting', 60_000);
      const text = await scrape(address);
      assert.ok(
        samples(text, 'temporal_workflow_task_execution_latency_count', { task_queue: TASK_QUEUE, workflow_type: 'ledgerSwap' }).length,
        text.slice(0, 2000),
      );
      assert.ok(samples(text, 'temporal_activity_execution_latency_count', { activity_type: 'ledgerApply' }).length, 'activity metrics');
      await handle.signal(rejectSignal, { by: 'alice', checkpoint: 'delete-old', reason: 'metrics seen' });
      await handle.result().catch(() => undefined);
    } finally {
      worker.kill('SIGTERM');
      await worker;
    }
  });

  it('takes only an IP address and port to listen on', () => {
    assert.equal(metricsBindAddress('127.0.0.1:9464'), '127.0.0.1:9464');
    assert.equal(metricsBindAddress('[::1]:9464'), '[::1]:9464');
    for (const bad of ['9464', 'localhost:9464', '127.0.0.1:0', '127.0.0.1:70000', 'http://127.0.0.1:9464']) {
      assert.throws(
        () => metricsBindAddress(bad),
        /--metrics .*: expected an IP address and port to listen on, e\.g\. 127\.0\.0\.1:9464/,
        bad,
      );
    }
  });
});
