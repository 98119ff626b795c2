/** `runbook worker`: serve the runbooks task queue at --address until SIGINT/SIGTERM. */
import { installRuntime, runWorker } from '../worker.js';
import { createDeps } from '../activities/deps.js';
import { ExitCode, UsageError } from './errors.js';
import type { CommandContext } from './context.js';

export interface WorkerCommandOptions {
  /** `host:port` for the Prometheus endpoint. */
  metrics?: string;
}

export async function workerCommand(ctx: CommandContext, options: WorkerCommandOptions = {}): Promise<number> {
  const metricsAddress = options.metrics ? metricsBindAddress(options.metrics) : undefined;
  // Before the worker connects: the runtime, and with it the metrics endpoint, is set up once per process.
  installRuntime({ metricsAddress });
  await runWorker(
    {
      address: ctx.address,
      namespace: ctx.namespace,
      secure: ctx.temporalTarget.secure,
      // Loaded and validated before the worker polls: a worker without its own config would have no rules to enforce.
      environments: ctx.requireConfig(),
      plugins: await ctx.loadPlugins(),
      deps: createDeps(),
      workflowBundlePath: process.env.RUNBOOK_WORKFLOW_BUNDLE,
    },
    () => {
      if (metricsAddress) console.log(`metrics on http://${metricsAddress}/metrics`);
      const how = ctx.temporalTarget.secure.tls ? ` over TLS (profile '${ctx.temporalTarget.profile}')` : '';
      console.log(
        `worker polling '${ctx.namespace}' at ${ctx.address}${how} with environments from ${ctx.requireConfig().path} (Ctrl-C to stop)`,
      );
    },
  );
  return ExitCode.ok;
}

/** `127.0.0.1:9464`, `0.0.0.0:9464` or `[::1]:9464`: the SDK's exporter binds a socket address, not a host name. */
export function metricsBindAddress(value: string): string {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65_535) {
    throw new UsageError(`--metrics ${value}: expected an IP address and port to listen on, e.g. 127.0.0.1:9464`);
  }
  return `${match[1]}:${port}`;
}
