/**
 * A worker for the runbooks task queue: the built-in workflows and activities
 * plus those of any plugins.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString, DefaultLogger, type LogLevel } from '@temporalio/worker';
import { createActivities, merge, type ActivityDeps } from './activities/index.js';
import { TASK_QUEUE } from './messages.js';
import { builtinRunbooks, Catalog } from './catalog/index.js';
import type { RunbooksConfig } from './config.js';
import type { RunbookPlugin } from './plugins.js';
import { lazyTemporalClient } from './activities/runs.js';

const distSrc = dirname(fileURLToPath(import.meta.url));
const builtinWorkflows = join(distSrc, 'workflows', 'index.js');
// Inside the project so the bundler resolves @temporalio/workflow from its node_modules.
const generatedEntries = join(distSrc, '..', '..', 'node_modules', '.cache', 'temporal-runbooks');

export interface WorkerOptions {
  address: string;
  namespace: string;
  /**
   * The environments file this worker enforces: every run's policy, defaults,
   * AWS connection and allowed inputs come from here, never from the starter.
   */
  environments: RunbooksConfig;
  plugins?: RunbookPlugin[];
  deps?: ActivityDeps;
  /** A prebuilt workflow bundle (from `bundleWorkflowCode`), to skip bundling at start. */
  workflowBundlePath?: string;
  identity?: string;
}

let runtimeInstalled = false;

/** Keeps the SDK's own logging to warnings unless asked, so CLI output stays readable. */
export function installRuntime(level: LogLevel = (process.env.RUNBOOK_LOG_LEVEL as LogLevel) ?? 'WARN'): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger(level),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level }) } },
  });
}

/** One module that re-exports the built-in workflows and every plugin's, for the bundler. */
export function workflowsEntry(plugins: RunbookPlugin[]): string {
  const extra = plugins.flatMap((p) => (p.workflowsPath ? [p.workflowsPath] : []));
  if (!extra.length) return builtinWorkflows;
  mkdirSync(generatedEntries, { recursive: true });
  const dir = mkdtempSync(join(generatedEntries, 'workflows-'));
  const entry = join(dir, 'index.js');
  writeFileSync(entry, [builtinWorkflows, ...extra].map((p) => `export * from ${JSON.stringify(p)};`).join('\n') + '\n');
  return entry;
}

export async function createWorker(options: WorkerOptions): Promise<{ worker: Worker; connection: NativeConnection }> {
  installRuntime();
  const plugins = options.plugins ?? [];
  const catalog = new Catalog([...builtinRunbooks, ...plugins.flatMap((p) => p.runbooks)]);
  const deps: ActivityDeps = {
    temporal: lazyTemporalClient(options.address, options.namespace),
    ...options.deps,
    environments: options.environments,
    catalog,
  };
  const activities = merge(createActivities(deps), ...plugins.map((p) => p.activities?.(deps) ?? {}));
  const connection = await NativeConnection.connect({ address: options.address });
  const worker = await Worker.create({
    connection,
    namespace: options.namespace,
    taskQueue: TASK_QUEUE,
    activities,
    ...(options.workflowBundlePath
      ? { workflowBundle: { codePath: options.workflowBundlePath } }
      : { workflowsPath: workflowsEntry(plugins) }),
    // In-flight activities get time to finish (they are idempotent, but a clean end beats a retry).
    shutdownGraceTime: '20s',
    identity: options.identity ?? `runbook-worker@${process.pid}`,
  });
  return { worker, connection };
}

/** Runs until SIGINT/SIGTERM (the SDK's runtime shuts workers down on those), then drains in-flight activities. */
export async function runWorker(options: WorkerOptions, onReady?: () => void): Promise<void> {
  const { worker, connection } = await createWorker(options);
  onReady?.();
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}
