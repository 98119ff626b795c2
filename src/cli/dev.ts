/**
 * `runbook dev` (what `npm start` runs): the local stack, a freshly seeded
 * sandbox, and a worker, until Ctrl-C. Temporal's history persists across
 * restarts; AWS emulator state and sandbox databases are seeded anew each time.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { seedSandbox, type Sandbox } from '../stack/sandbox/index.js';
import { MOTO_AWS_ENV, startStack, type Stack } from '../stack/index.js';
import { runWorker } from '../worker.js';
import { createDeps } from '../activities/deps.js';
import { loadPlugins, pluginPaths } from '../plugins.js';
import { parseConfig } from '../config.js';
import { DEV_STATE_FILE, type CommandContext, type DevState } from './context.js';
import { ExitCode } from './errors.js';
import { waitUntilPolling } from './run-status.js';

export interface DevOptions {
  port: string;
  uiPort: string;
}

export async function devCommand(_ctx: CommandContext, options: DevOptions): Promise<number> {
  const dataDir = resolve('.runbook');
  mkdirSync(dataDir, { recursive: true });
  let stack: Stack | undefined;
  let sandbox: Sandbox | undefined;
  // Ctrl-C before the worker runs must still stop whatever has started.
  const interrupted = new Promise<void>((resolveInterrupt) => process.once('SIGINT', () => resolveInterrupt()));
  const stopping = new AbortController();
  try {
    console.log('Starting the local stack (Temporal with UI, AWS emulator, PostgreSQL)…');
    stack = await startStack({
      dataDir,
      temporalPort: Number(options.port),
      uiPort: Number(options.uiPort),
      persistTemporal: true,
      log: (line) => console.log(`  ${line}`),
    });
    Object.assign(process.env, MOTO_AWS_ENV, { AWS_REGION: MOTO_AWS_ENV.AWS_DEFAULT_REGION });
    sandbox = await seedSandbox({ awsEndpoint: stack.awsEndpoint, postgresUrl: stack.postgresUrl, postgresCa: stack.postgresCa });

    const configPath = join(dataDir, 'config.yaml');
    writeFileSync(configPath, stringify(devConfig(stack, sandbox)));
    const state: DevState = {
      temporalAddress: stack.temporalAddress,
      uiUrl: stack.uiUrl,
      awsEndpoint: stack.awsEndpoint,
      postgresUrl: stack.postgresUrl,
      config: configPath,
    };

    const config = parseConfig(readFileSync(configPath, 'utf8'), configPath);
    const identity = `runbook-dev@${process.pid}`;
    const worker = runWorker(
      {
        address: stack.temporalAddress,
        namespace: 'default',
        environments: config,
        plugins: await loadPlugins(pluginPaths(config.plugins, dataDir)),
        deps: createDeps({ ...process.env, ...sandbox.workerEnv }),
        identity,
      },
      // The worker exists but does not poll yet: dev.json and "Ready." wait until the server has seen it poll,
      // so a script that starts a run the moment dev.json appears finds a worker.
      () =>
        void waitUntilPolling(state.temporalAddress, identity, stopping.signal).then(
          () => {
            writeFileSync(DEV_STATE_FILE, JSON.stringify(state, null, 2) + '\n');
            printBanner(state);
          },
          (err: unknown) => stopping.signal.aborted || console.error(`The worker did not start polling: ${(err as Error).message}`),
        ),
    );
    await Promise.race([worker, interrupted]);
    await worker.catch(() => undefined);
    return ExitCode.ok;
  } finally {
    console.log('Stopping the local stack…');
    stopping.abort();
    rmSync(DEV_STATE_FILE, { force: true });
    await sandbox?.stop();
    await stack?.stop();
    console.log('Stopped.');
  }
}

/** The sandbox environment, plus the environments and plugins of ./runbooks.config.yaml when there is one. */
function devConfig(stack: Stack, sandbox: Sandbox): Record<string, unknown> {
  const own = existsSync('runbooks.config.yaml')
    ? (parseYaml(readFileSync('runbooks.config.yaml', 'utf8')) as Record<string, unknown>)
    : {};
  const ownEnvironments = (own.environments ?? {}) as Record<string, unknown>;
  return {
    ...own,
    plugins: ((own.plugins ?? []) as string[]).map((p) => resolve(p)),
    temporal: { address: stack.temporalAddress, uiUrl: stack.uiUrl },
    environments: { ...ownEnvironments, sandbox: sandbox.environment },
  };
}

function printBanner(state: DevState): void {
  console.log(`
Ready.
  Temporal UI   ${state.uiUrl}
  Temporal      ${state.temporalAddress}
  AWS emulator  ${state.awsEndpoint}
  config        ${state.config}

Next, in another terminal:
  npx runbook list
  npx runbook start <runbook> --env sandbox --wait
  npx runbook ls

Ctrl-C stops everything this started.`);
}
