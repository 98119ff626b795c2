/**
 * ecs-migration runs other runs depend on, as Temporal's visibility knows
 * them: production migrates only an image that migrated on staging first.
 */
import { FINAL_STATUS_MEMO, searchAttributes, type RunStatus } from '../messages.js';
import type { FoundRun, TemporalDeps } from './runs.js';

const HISTORY_LOOKBACK = 100;

export function createMigrationRunsActivities(deps: TemporalDeps) {
  const temporal = deps.temporal ?? (() => Promise.reject(new Error('this worker has no Temporal client for visibility queries')));

  return {
    /** The newest succeeded, non-dry ecs-migration run on `env` that migrated with an image of this tag. */
    async findSucceededMigration({ env, imageTag }: { env: string; imageTag: string }): Promise<FoundRun | null> {
      const client = await temporal();
      const query = `${searchAttributes.runbook.name} = 'ecs-migration' AND ${searchAttributes.env.name} = '${env}' AND ExecutionStatus = 'Completed'`;
      let seen = 0;
      for await (const run of client.workflow.list({ query })) {
        const status = run.memo?.[FINAL_STATUS_MEMO] as RunStatus | undefined;
        const result = status?.result as { imageTag?: string } | null | undefined;
        if (status && !status.dryRun && result?.imageTag === imageTag) {
          return { workflowId: run.workflowId, runId: run.runId, closedAt: (run.closeTime ?? run.startTime).toISOString() };
        }
        if (++seen >= HISTORY_LOOKBACK) break;
      }
      return null;
    },
  };
}

export type MigrationRunsActivities = ReturnType<typeof createMigrationRunsActivities>;
