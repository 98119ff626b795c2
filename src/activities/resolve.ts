/**
 * The resolve step of every run: the worker's environments file and catalog
 * decide the run's parameters and policy (see `catalog/resolve.ts`).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Catalog } from '../catalog/index.js';
import { InputError } from '../catalog/errors.js';
import { resolveRun } from '../catalog/resolve.js';
import { environmentSigners, type RunbooksConfig } from '../config.js';
import { FailureType, type ResolvedRun, type RunbookInput } from '../messages.js';
import { SignatureError } from '../signing/sshsig.js';
import { verifyStart } from '../signing/verify.js';

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
        throw ApplicationFailure.nonRetryable(
          'this worker was started without an environments config (--config or RUNBOOK_CONFIG)',
          'WorkerMisconfigured',
        );
      }
      try {
        const resolved = resolveRun(deps.environments, deps.catalog, {
          workflowId,
          workflowType: Context.current().info.workflowType ?? '',
          input,
        });
        const run = input as RunbookInput;
        const signers = environmentSigners(deps.environments, { ...deps.environments.environments[run.env]!, name: run.env });
        // Where the environment lists signers, the identity is the key's principal; the claimed name is only a label.
        if (signers)
          resolved.startedBy = verifyStart(signers, {
            runbook: run.runbook,
            env: run.env,
            params: run.params,
            requestId: run.requestId,
            expiresAt: String(run.expiresAt ?? ''),
            signature: typeof run.signature === 'string' ? run.signature : undefined,
          });
        return resolved;
      } catch (err) {
        if (err instanceof InputError)
          throw ApplicationFailure.create({ type: FailureType.invalidInput, message: err.message, nonRetryable: true });
        if (err instanceof SignatureError)
          throw ApplicationFailure.create({
            type: FailureType.invalidInput,
            message: `input.signature: ${err.message}`,
            nonRetryable: true,
          });
        throw err;
      }
    },
  };
}

export type ResolveActivities = ReturnType<typeof createResolveActivities>;
