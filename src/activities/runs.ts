/**
 * Other runbook runs, as Temporal's visibility knows them: the rules that
 * depend on history ("production only after staging succeeded") and on what
 * else is running.
 */
import { Client, Connection } from '@temporalio/client';
import { FINAL_STATUS_MEMO, searchAttributes, type RunStatus } from '../messages.js';
import type { SecureOptions } from '../temporal-connection.js';

export interface TemporalDeps {
  /** A client for the worker's own Temporal; created on first use. */
  temporal?: () => Promise<Client>;
}

export interface SucceededRunQuery {
  runbook: string;
  env: string;
  /** The run must have covered every one of these (read from its result's `regions[].id`). */
  regionIds: string[];
}

export interface FoundRun {
  workflowId: string;
  runId: string;
  closedAt: string;
}

const HISTORY_LOOKBACK = 100;

export function createRunsActivities(deps: TemporalDeps) {
  const temporal = deps.temporal ?? (() => Promise.reject(new Error('this worker has no Temporal client for visibility queries')));

  return {
    /** The newest succeeded, non-dry run of `runbook` on `env` whose result covers all the regions. */
    async findSucceededRun(query: SucceededRunQuery): Promise<FoundRun | null> {
      const client = await temporal();
      const visibility = `${searchAttributes.runbook.name} = '${query.runbook}' AND ${searchAttributes.env.name} = '${query.env}' AND ExecutionStatus = 'Completed'`;
      let seen = 0;
      for await (const run of client.workflow.list({ query: visibility })) {
        const status = run.memo?.[FINAL_STATUS_MEMO] as RunStatus | undefined;
        const covered = new Set(((status?.result as { regions?: { id: string }[] } | null)?.regions ?? []).map((r) => r.id));
        if (status && !status.dryRun && query.regionIds.every((id) => covered.has(id))) {
          return { workflowId: run.workflowId, runId: run.runId, closedAt: (run.closeTime ?? run.startTime).toISOString() };
        }
        if (++seen >= HISTORY_LOOKBACK) break;
      }
      return null;
    },

    /** Open runs of a runbook on an environment, other than the asking one. */
    async findOpenRuns({ runbook, env, except }: { runbook: string; env: string; except: string }): Promise<string[]> {
      const client = await temporal();
      const open: string[] = [];
      const visibility = `${searchAttributes.runbook.name} = '${runbook}' AND ${searchAttributes.env.name} = '${env}' AND ExecutionStatus = 'Running'`;
      for await (const run of client.workflow.list({ query: visibility })) if (run.workflowId !== except) open.push(run.workflowId);
      return open;
    },

    /** Whether a run with this ID is open (its lock is held). */
    async isRunOpen({ workflowId }: { workflowId: string }): Promise<boolean> {
      const client = await temporal();
      try {
        return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') return false;
        throw err;
      }
    },
  };
}

export type RunsActivities = ReturnType<typeof createRunsActivities>;

/** One lazily connected client per worker, for activities that ask Temporal about other runs. */
export function lazyTemporalClient(address: string, namespace: string, secure: SecureOptions = {}): () => Promise<Client> {
  let client: Promise<Client> | undefined;
  return () => (client ??= Connection.connect({ address, ...secure }).then((connection) => new Client({ connection, namespace })));
}
