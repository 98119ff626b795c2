/**
 * Tells people a checkpoint waits for them: one JSON POST to the environment's
 * webhook. The webhook's URL stays in the worker's config (it is a secret for
 * most receivers) and never enters the run's history.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { WorkerConfigDeps } from './resolve.js';

export interface CheckpointNotice {
  workflowId: string;
  runbook: string;
  env: string;
  checkpoint: string;
  waitId?: string;
  prompt: string;
  approvers: string[];
  /** Runs started before the worker held the config carried these in their input. */
  webhook?: string;
  uiUrl?: string;
}

export function createNotifyActivities(deps: WorkerConfigDeps) {
  return {
    async notifyCheckpoint(notice: CheckpointNotice): Promise<void> {
      const env = deps.environments?.environments[notice.env];
      const webhook = notice.webhook ?? env?.approvals.webhook;
      if (!webhook) return;
      const { webhook: _webhook, ...body } = notice;
      const uiUrl = notice.uiUrl ?? runUrl(deps.environments?.temporal.uiUrl ?? process.env.TEMPORAL_UI_URL, deps.environments?.temporal.namespace, notice.workflowId);
      const text = `${notice.runbook} on ${notice.env} waits at '${notice.checkpoint}': ${notice.prompt}` +
        ` — approve with: runbook approve ${notice.workflowId} --checkpoint ${notice.checkpoint}`;
      const response = await fetch(webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text, ...body, ...(uiUrl ? { uiUrl } : {}) }),
        signal: AbortSignal.timeout(10_000),
      });
      if (response.status >= 400 && response.status < 500) {
        throw ApplicationFailure.nonRetryable(`webhook refused the notice: HTTP ${response.status}`, 'NotifyRefused');
      }
      if (!response.ok) throw new Error(`webhook answered HTTP ${response.status}`);
    },
  };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;

function runUrl(uiUrl: string | undefined, namespace = 'default', workflowId: string): string | undefined {
  if (!uiUrl) return undefined;
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
