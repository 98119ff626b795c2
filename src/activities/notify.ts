/** Tells people a checkpoint waits for them: one JSON POST to the environment's webhook. */
import { ApplicationFailure } from '@temporalio/activity';

export interface CheckpointNotice {
  webhook: string;
  workflowId: string;
  runbook: string;
  env: string;
  checkpoint: string;
  prompt: string;
  approvers: string[];
  uiUrl?: string;
}

export async function notifyCheckpoint(notice: CheckpointNotice): Promise<void> {
  const { webhook, ...body } = notice;
  const text = `${notice.runbook} on ${notice.env} waits at '${notice.checkpoint}': ${notice.prompt}` +
    ` — approve with: runbook approve ${notice.workflowId} --checkpoint ${notice.checkpoint}`;
  const response = await fetch(webhook, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text, ...body }),
    signal: AbortSignal.timeout(10_000),
  });
  if (response.status >= 400 && response.status < 500) {
    throw ApplicationFailure.nonRetryable(`webhook refused the notice: HTTP ${response.status}`, 'NotifyRefused');
  }
  if (!response.ok) throw new Error(`webhook answered HTTP ${response.status}`);
}
