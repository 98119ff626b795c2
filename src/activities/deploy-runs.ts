/**
 * What other runs say about a service, as Temporal's visibility and the runs'
 * memos know it: who holds the service now (one runbook at a time per ECS
 * service, across runbooks), and the prod-tag-deploy runs that succeeded on
 * it (which image each made prod, with the schema migrations there were then,
 * and whether a rollback froze deploys).
 */
import { FINAL_STATUS_MEMO, SERVICES_MEMO, searchAttributes, type RunStatus } from '../messages.js';
import type { TemporalDeps } from './runs.js';

export interface SucceededDeploy {
  workflowId: string;
  runId: string;
  closedAt: string;
  /** The run's result, as its memo keeps it. */
  result: unknown;
}

const HISTORY_LOOKBACK = 200;

export function createDeployRunsActivities(deps: TemporalDeps) {
  const temporal = deps.temporal ?? (() => Promise.reject(new Error('this worker has no Temporal client for visibility queries')));

  return {
    /**
     * Open runs on `env` that change this ECS service, other than the asking
     * one: runs whose target it is, and runs that list it in their memo
     * (db-migration's writers).
     */
    async findServiceHolders({ env, service, except }: { env: string; service: string; except: string }): Promise<string[]> {
      const client = await temporal();
      const query = `${searchAttributes.env.name} = '${env.replace(/'/g, "''")}' AND ExecutionStatus = 'Running'`;
      const holders: string[] = [];
      for await (const run of client.workflow.list({ query })) {
        if (run.workflowId === except) continue;
        const target = run.typedSearchAttributes.get(searchAttributes.target);
        const services = (run.memo?.[SERVICES_MEMO] as string[] | undefined) ?? [];
        if (target === service || services.includes(service)) holders.push(run.workflowId);
      }
      return holders;
    },

    /** Succeeded, non-dry prod-tag-deploy runs of this service on `env`, newest first. */
    async findSucceededDeploys({ env, service }: { env: string; service: string }): Promise<SucceededDeploy[]> {
      const client = await temporal();
      const query = `${searchAttributes.runbook.name} = 'prod-tag-deploy' AND ${searchAttributes.env.name} = '${env}' AND ${searchAttributes.target.name} = '${service}' AND ExecutionStatus = 'Completed'`;
      const found: SucceededDeploy[] = [];
      for await (const run of client.workflow.list({ query })) {
        const status = run.memo?.[FINAL_STATUS_MEMO] as RunStatus | undefined;
        if (status && !status.dryRun)
          found.push({
            workflowId: run.workflowId,
            runId: run.runId,
            closedAt: (run.closeTime ?? run.startTime).toISOString(),
            result: status.result,
          });
        if (found.length >= HISTORY_LOOKBACK) break;
      }
      return found.sort((a, b) => b.closedAt.localeCompare(a.closedAt));
    },
  };
}

export type DeployRunsActivities = ReturnType<typeof createDeployRunsActivities>;
