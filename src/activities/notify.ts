/**
 * Tells people a checkpoint waits for them: one JSON POST to the environment's
 * webhook. The webhook's URL stays in the worker's config (it is a secret for
 * most receivers) and never enters the run's history.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { LEGACY_APPROVALS_WEBHOOK, type RunbooksConfig } from '../config.js';
import type { RunNotice } from '../messages.js';
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
    /** Tells one named webhook about one event of a run; retried by Temporal, never fatal to the run. */
    async notifyRun(notice: RunNotice): Promise<void> {
      const config = deps.environments;
      if (!config) throw ApplicationFailure.nonRetryable('this worker has no environments config', 'WorkerMisconfigured');
      const { url, format } = webhookOf(config, notice.env, notice.webhook);
      const uiUrl = runUrl(config.temporal.uiUrl ?? process.env.TEMPORAL_UI_URL, config.temporal.namespace, notice.workflowId);
      const text = describeNotice(notice);
      const body = format === 'slack' ? slackBody(text, uiUrl) : { text, ...notice, ...(uiUrl ? { uiUrl } : {}) };
      await post(url, body, notice.webhook);
    },

    async notifyCheckpoint(notice: CheckpointNotice): Promise<void> {
      const env = deps.environments?.environments[notice.env];
      const webhook = notice.webhook ?? env?.approvals.webhook;
      if (!webhook) return;
      const { webhook: _webhook, ...body } = notice;
      const uiUrl =
        notice.uiUrl ??
        runUrl(deps.environments?.temporal.uiUrl ?? process.env.TEMPORAL_UI_URL, deps.environments?.temporal.namespace, notice.workflowId);
      const text =
        `${notice.runbook} on ${notice.env} waits at '${notice.checkpoint}': ${notice.prompt}` +
        ` — approve with: runbook approve ${notice.workflowId} --checkpoint ${notice.checkpoint}`;
      await post(webhook, { text, ...body, ...(uiUrl ? { uiUrl } : {}) }, 'webhook');
    },
  };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;

function runUrl(uiUrl: string | undefined, namespace = 'default', workflowId: string): string | undefined {
  if (!uiUrl) return undefined;
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** The receiver's URL: from the worker's config, or from the worker's environment for `env:` references. */
function webhookOf(config: RunbooksConfig, envName: string, name: string): { url: string; format: 'slack' | 'json' } {
  if (name === LEGACY_APPROVALS_WEBHOOK) {
    const url = Object.hasOwn(config.environments, envName) ? config.environments[envName]!.approvals.webhook : undefined;
    if (!url) throw ApplicationFailure.nonRetryable(`environment ${envName} has no approvals.webhook`, 'NotifyMisconfigured');
    return { url, format: 'json' };
  }
  const webhook = Object.hasOwn(config.webhooks, name) ? config.webhooks[name] : undefined;
  if (!webhook) throw ApplicationFailure.nonRetryable(`no webhook named '${name}' in the worker's config`, 'NotifyMisconfigured');
  if (!webhook.url.startsWith('env:')) return webhook;
  const variable = webhook.url.slice('env:'.length);
  const url = process.env[variable];
  if (!url)
    throw ApplicationFailure.nonRetryable(`webhook '${name}': ${variable} is not set in the worker's environment`, 'NotifyMisconfigured');
  return { url, format: webhook.format };
}

async function post(url: string, body: unknown, name: string): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  // The URL itself is never echoed: for most receivers it is the credential.
  if (response.status >= 400 && response.status < 500) {
    throw ApplicationFailure.nonRetryable(`${name} refused the notice: HTTP ${response.status}`, 'NotifyRefused');
  }
  if (!response.ok) throw new Error(`${name} answered HTTP ${response.status}`);
}

/** One line an operator reads in a chat channel. */
export function describeNotice(n: RunNotice): string {
  const run = `${n.runbook} on ${n.env}${n.dryRun ? ' [dry run]' : ''} (${n.workflowId})`;
  const approve = n.checkpoint ? ` — approve with: runbook approve ${n.workflowId} --checkpoint ${n.checkpoint}` : '';
  switch (n.event) {
    case 'started':
      return `${run} started by ${n.startedBy}: ${n.summary}`;
    case 'waiting':
      return `${n.runbook} on ${n.env} waits at '${n.checkpoint}': ${n.prompt}${approve}`;
    case 'reminder':
      return `Reminder: ${run} still waits at '${n.checkpoint}' and rejects itself at ${n.timeoutAt}: ${n.prompt}${approve}`;
    case 'decided':
      return `'${n.checkpoint}' of ${run} ${n.decision?.decision} by ${n.decision?.by}${n.decision?.comment ? `: ${n.decision.comment}` : ''}`;
    case 'succeeded':
      return `${run} succeeded: ${n.summary}`;
    case 'frozen':
      return `Deploy freeze: ${n.detail ?? n.summary} (${run})`;
    default:
      return `${run} ${n.event}: ${n.error ?? n.summary}`;
  }
}

/** Slack's incoming-webhook shape: `text` for notifications, `blocks` for the message. */
function slackBody(text: string, uiUrl: string | undefined) {
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      ...(uiUrl ? [{ type: 'context', elements: [{ type: 'mrkdwn', text: `<${uiUrl}|Open the run in the Temporal UI>` }] }] : []),
    ],
  };
}
