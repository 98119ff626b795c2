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
import { checkWorkerFiles, type RunbooksConfig } from './config.js';
import type { RunbookPlugin } from './plugins.js';
import type { SecureOptions } from './temporal-connection.js';
import { lazyTemporalClient } from './activities/runs.js';
import { RUNBOOK_HISTOGRAM_BUCKETS } from './workflows/engine/metrics.js';

const distSrc = dirname(fileURLToPath(import.meta.url));
const builtinWorkflows = join(distSrc, 'workflows', 'index.js');
// Inside the project so the bundler resolves @temporalio/workflow from its node_modules.
const generatedEntries = join(distSrc, '..', '..', 'node_modules', '.cache', 'temporal-runbooks');

export interface WorkerOptions {
  address: string;
  namespace: string;
  /** TLS, client certificate, API key and gRPC metadata (from the Temporal client config profile). */
  secure?: SecureOptions;
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

export interface RuntimeOptions {
  /** The SDK's log level; default `RUNBOOK_LOG_LEVEL`, else WARN, so CLI output stays readable. */
  level?: LogLevel;
  /** `host:port` to serve Prometheus metrics on (`/metrics`): the SDK's worker metrics and the runbook ones. */
  metricsAddress?: string;
}

let installed: RuntimeOptions | undefined;

/**
 * Installs the SDK's process-wide runtime (logging, metrics). It can be
 * installed once per process, before the first worker connects; a later call
 * asking for metrics the installed runtime does not serve is a mistake, not a no-op.
 */
export function installRuntime(options: RuntimeOptions = {}): void {
  if (installed) {
    if (options.metricsAddress && options.metricsAddress !== installed.metricsAddress) {
      throw new Error(
        `the worker runtime is already installed ${installed.metricsAddress ? `with metrics on ${installed.metricsAddress}` : 'without metrics'}`,
      );
    }
    return;
  }
  const level = options.level ?? (process.env.RUNBOOK_LOG_LEVEL as LogLevel | undefined) ?? 'WARN';
  installed = { level, metricsAddress: options.metricsAddress };
  Runtime.install({
    logger: new DefaultLogger(level),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: level }) },
      // Durations in seconds, counters ending in _total: what Prometheus conventions and stock dashboards expect.
      ...(options.metricsAddress
        ? {
            metrics: {
              prometheus: {
                bindAddress: options.metricsAddress,
                useSecondsForDurations: true,
                countersTotalSuffix: true,
                histogramBucketOverrides: RUNBOOK_HISTOGRAM_BUCKETS,
              },
            },
          }
        : {}),
    },
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
  checkWorkerFiles(options.environments); // CA bundles: a bad one is a config error now, not a failed run later
  const plugins = options.plugins ?? [];
  const catalog = new Catalog([...builtinRunbooks, ...plugins.flatMap((p) => p.runbooks)]);
  const deps: ActivityDeps = {
    temporal: lazyTemporalClient(options.address, options.namespace, options.secure),
    ...options.deps,
    environments: options.environments,
    catalog,
  };
  const activities = merge(createActivities(deps), ...plugins.map((p) => p.activities?.(deps) ?? {}));
  const connection = await NativeConnection.connect({ address: options.address, ...options.secure });
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
