/**
 * Verifies signed decisions for the workflow: a signal handler cannot call
 * anything, so the checkpoint's wait loop hands each signed decision to this
 * activity, and the worker checks it against its own signers file.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { environment, environmentSigners } from '../config.js';
import { SignatureError } from '../signing/sshsig.js';
import { verifyDecision } from '../signing/verify.js';
import type { WorkerConfigDeps } from './resolve.js';

export interface DecisionToVerify {
  env: string;
  workflowId: string;
  runId: string;
  /** The wait the run is at: the workflow's own, never the sender's. */
  waitId: string;
  decision: 'approved' | 'rejected';
  comment?: string;
  /** The sender's claimed name, when given; it must be the key's principal. */
  by?: string;
  signature?: string;
  expiresAt?: string;
}

export type VerifiedDecision = { ok: true; principal: string } | { ok: false; reason: string };

export function createSignatureActivities(deps: WorkerConfigDeps) {
  return {
    /** The key's principal, or why the decision is refused; a bad signature is an answer, not a failure. */
    async verifyDecisionSignature(decision: DecisionToVerify): Promise<VerifiedDecision> {
      if (!deps.environments)
        throw ApplicationFailure.nonRetryable(
          'this worker was started without an environments config (--config or RUNBOOK_CONFIG)',
          'WorkerMisconfigured',
        );
      const signers = environmentSigners(deps.environments, environment(deps.environments, decision.env));
      if (!signers)
        return { ok: false, reason: `${decision.env} lists no signers in this worker's config, so a signed decision cannot be checked` };
      try {
        return { ok: true, principal: verifyDecision(signers, { ...decision, expiresAt: decision.expiresAt ?? '' }) };
      } catch (err) {
        if (err instanceof SignatureError) return { ok: false, reason: err.message };
        throw err;
      }
    },
  };
}

export type SignatureActivities = ReturnType<typeof createSignatureActivities>;
