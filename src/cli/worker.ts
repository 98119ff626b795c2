/** `runbook worker`: serve the runbooks task queue at --address until SIGINT/SIGTERM. */
import { runWorker } from '../worker.js';
import { createDeps } from '../activities/deps.js';
import { ExitCode } from './errors.js';
import type { CommandContext } from './context.js';

export async function workerCommand(ctx: CommandContext): Promise<number> {
  await runWorker(
    {
      address: ctx.address,
      namespace: ctx.namespace,
      // Loaded and validated before the worker polls: a worker without its own config would have no rules to enforce.
      environments: ctx.requireConfig(),
      plugins: await ctx.loadPlugins(),
      deps: createDeps(),
      workflowBundlePath: process.env.RUNBOOK_WORKFLOW_BUNDLE,
    },
    () => console.log(`worker polling '${ctx.namespace}' at ${ctx.address} with environments from ${ctx.requireConfig().path} (Ctrl-C to stop)`),
  );
  return ExitCode.ok;
}
