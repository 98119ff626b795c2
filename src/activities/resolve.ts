/**
 * The resolve step of every run: the worker's environments file and catalog
 * decide the run's parameters and policy (see `catalog/resolve.ts`).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Catalog } from '../catalog/index.js';
import { InputError } from '../catalog/errors.js';
import { resolveRun } from '../catalog/resolve.js';
import type { RunbooksConfig } from '../config.js';
import { FailureType, type ResolvedRun } from '../messages.js';

export interface WorkerConfigDeps {
  /** The worker's environments file, loaded and validated at start. */
  environments?: RunbooksConfig;
  /** Built-in runbooks and the plugins' the worker registered. */
  catalog?: Catalog;
}

export function createResolveActivities(deps: WorkerConfigDeps) {
  return {
    async resolveRun({ workflowId, input }: { workflowId: string; input: unknown }): Promise<ResolvedRun> {
      if (!deps.environments || !deps.catalog) {
        throw ApplicationFailure.nonRetryable('this worker was started without an environments config (--config or RUNBOOK_CONFIG)', 'WorkerMisconfigured');
      }
      try {
        return resolveRun(deps.environments, deps.catalog, { workflowId, workflowType: Context.current().info.workflowType ?? '', input });
      } catch (err) {
        if (err instanceof InputError) throw ApplicationFailure.create({ type: FailureType.invalidInput, message: err.message, nonRetryable: true });
        throw err;
      }
    },
  };
}

export type ResolveActivities = ReturnType<typeof createResolveActivities>;
