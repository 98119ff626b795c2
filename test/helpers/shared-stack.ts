/**
 * One local stack (Temporal, moto, PostgreSQL), one seeded sandbox and one
 * workflow bundle for a whole e2e test run: started by the lane runner
 * (test/run-e2e.ts) for all its lanes, or by test/setup.ts when a file runs
 * alone. What a test process needs to attach to it is JSON (SharedStackInfo),
 * passed to lanes as a file named by RUNBOOK_TEST_STACK.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { installRuntime, workflowsEntry } from '../../src/worker.js';
import { loadPlugins } from '../../src/plugins.js';
import { MOTO_AWS_ENV, resolveTemporalCli, startStack, defaultToolsDir } from '../../src/stack/index.js';
import { seedSandbox } from '../../src/stack/sandbox/index.js';
import { localSandbox, serveSandbox, snapshotOf, type SandboxSnapshot, type TestSandbox } from './sandbox-control.js';
import { quietBundlerLogger } from './quiet-logger.js';

/** Names the JSON file of a running stack; a test process given it attaches instead of starting one. */
export const SHARED_STACK_ENV = 'RUNBOOK_TEST_STACK';

export const fixturePluginPath = fileURLToPath(new URL('../fixtures/plugin.js', import.meta.url));

export interface SharedStackInfo {
  temporalAddress: string;
  uiUrl: string;
  awsEndpoint: string;
  postgresUrl: string;
  pgBinDir: string;
  temporalCli: string;
  workflowBundlePath: string;
  sandbox: SandboxSnapshot;
  /** Where the seeding process serves the sandbox's simulator controls (sandbox-control.ts). */
  sandboxControlUrl?: string;
}

export interface SharedStack {
  info: SharedStackInfo;
  /** The sandbox, called directly (this process seeded it). */
  sandbox: TestSandbox;
  /** Every process the stack runs, for leak checks. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * Starts the stack in `dir`, seeds the sandbox and bundles the workflows.
 * `namespaces`: Temporal namespaces to create (one per lane). `serve`: serve
 * the sandbox's controls for other processes.
 */
export async function startSharedStack(dir: string, options: { namespaces?: string[]; serve?: boolean } = {}): Promise<SharedStack> {
  installRuntime();
  const temporalCli = await resolveTemporalCli(defaultToolsDir, (line) => console.log(line));
  const [stack, bundle] = await Promise.all([
    startStack({ dataDir: join(dir, 'stack'), log: () => {}, namespaces: options.namespaces }),
    loadPlugins([fixturePluginPath]).then((plugins) =>
      bundleWorkflowCode({ workflowsPath: workflowsEntry(plugins), logger: quietBundlerLogger }),
    ),
  ]);
  try {
    Object.assign(process.env, MOTO_AWS_ENV, { AWS_REGION: 'us-east-1' });
    const seeded = await seedSandbox({ awsEndpoint: stack.awsEndpoint, postgresUrl: stack.postgresUrl, postgresCa: stack.postgresCa });
    const control = options.serve ? await serveSandbox(seeded) : undefined;
    const workflowBundlePath = join(dir, 'workflow-bundle.js');
    writeFileSync(workflowBundlePath, bundle.code);
    return {
      info: {
        temporalAddress: stack.temporalAddress,
        uiUrl: stack.uiUrl,
        awsEndpoint: stack.awsEndpoint,
        postgresUrl: stack.postgresUrl,
        pgBinDir: stack.pgBinDir,
        temporalCli,
        workflowBundlePath,
        sandbox: snapshotOf(seeded),
        sandboxControlUrl: control?.url,
      },
      sandbox: localSandbox(seeded, stack.postgresUrl),
      pids: () => stack.pids(),
      async stop() {
        await control?.close();
        await seeded.stop();
        await stack.stop();
      },
    };
  } catch (error) {
    await stack.stop();
    throw error;
  }
}
