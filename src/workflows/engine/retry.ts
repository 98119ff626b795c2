/**
 * The retry policies runbook activities use, so a runbook says which kind of
 * call it makes rather than repeating numbers. Every activity is idempotent,
 * which is what makes retrying any of them safe.
 */
import type { RetryPolicy } from '@temporalio/common';

/** One call to a cloud or database API: rides out throttling and a restarting endpoint for about two minutes. */
export const API_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 8,
};

/**
 * A long wait that heartbeats (tasks healthy, a canary, a log to follow): many
 * attempts, because each one after a worker crash resumes from its last heartbeat.
 */
export const WAIT_RETRY: RetryPolicy = { ...API_RETRY, maximumAttempts: 20 };

/** A slow external tool (Terraform, a migration task): few attempts, spaced wide, as each may hold a lock for a while. */
export const TOOL_RETRY: RetryPolicy = {
  initialInterval: '5 seconds',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 5,
};
