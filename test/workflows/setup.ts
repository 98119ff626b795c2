/**
 * Root hooks of the workflow tier (`npm run test:workflows`): one Temporal dev
 * server and one workflow bundle (built-in runbooks plus the test fixtures)
 * for the whole run; no moto, no PostgreSQL, no worker process. Each test runs
 * a real Worker in this process with stub activities on a task queue of its
 * own (see `test/helpers/stub-worker.ts`), the pattern of the SDK's samples.
 *
 * The runtime serves Prometheus metrics on a free port, so tests can scrape
 * what an in-process worker reports.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadPlugins } from '../../src/plugins.js';
import { defaultToolsDir, resolveTemporalCli } from '../../src/stack/index.js';
import { freePorts } from '../../src/stack/ports.js';
import { startTemporal, type TemporalServer } from '../../src/stack/temporal.js';
import { installRuntime, workflowsEntry } from '../../src/worker.js';
import { quietBundlerLogger } from '../helpers/quiet-logger.js';

export interface WorkflowTier {
  env: TestWorkflowEnvironment;
  temporalAddress: string;
  temporalCli: string;
  /** Built-in workflows, the ledger fixture runbook and the test-only workflows. */
  workflowBundlePath: string;
  /** `host:port` of this process's Prometheus endpoint. */
  metricsAddress: string;
  dir: string;
}

const fixturePlugin = fileURLToPath(new URL('../fixtures/plugin.js', import.meta.url));
const testWorkflows = fileURLToPath(new URL('../fixtures/metrics-probe-runbook.js', import.meta.url));

let tier: WorkflowTier | undefined;
let server: TemporalServer | undefined;

export function workflowTier(): WorkflowTier {
  if (!tier) throw new Error('the workflow tier is not running (run it with `npm run test:workflows`)');
  return tier;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(15 * 60_000); // a cold machine builds the Temporal CLI first
    const dir = mkdtempSync(join(tmpdir(), 'runbook-workflows-'));
    const [temporalPort, uiPort, metricsPort] = await freePorts(3);
    const metricsAddress = `127.0.0.1:${metricsPort}`;
    // ERROR: the runs these tests fail on purpose would otherwise log every failure.
    installRuntime({ metricsAddress, level: 'ERROR' });
    const temporalCli = await resolveTemporalCli(defaultToolsDir, (line) => console.log(line));
    const [started, bundle] = await Promise.all([
      startTemporal({ cli: temporalCli, port: temporalPort!, uiPort: uiPort!, logFile: join(dir, 'temporal.log') }),
      loadPlugins([fixturePlugin]).then((plugins) =>
        bundleWorkflowCode({
          workflowsPath: workflowsEntry([...plugins, { runbooks: [], workflowsPath: testWorkflows }]),
          logger: quietBundlerLogger,
        }),
      ),
    ]);
    server = started;
    const workflowBundlePath = join(dir, 'workflow-bundle.js');
    writeFileSync(workflowBundlePath, bundle.code);
    const env = await TestWorkflowEnvironment.createFromExistingServer({ address: started.address });
    tier = { env, temporalAddress: started.address, temporalCli, workflowBundlePath, metricsAddress, dir };
  },

  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await tier?.env.teardown();
    await server?.stop();
    if (tier && !process.env.RUNBOOK_KEEP_TEST_DIR) rmSync(tier.dir, { recursive: true, force: true });
  },
};
