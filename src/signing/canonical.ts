/**
 * What a signer signs: one deterministic JSON text per start and per decision,
 * so the CLI (or any tool that makes SSHSIG signatures) and the worker build
 * the same bytes. Canonical JSON: object keys sorted by code unit, no
 * whitespace, strings escaped as JSON.stringify does, undefined fields left out.
 *
 *   start:    {"env":…,"expiresAt":…,"paramsHash":…,"requestId":…,"runbook":…}
 *   decision: {"commentHash":…,"decision":"approved"|"rejected","expiresAt":…,"runId":…,"waitId":…,"workflowId":…}
 *
 * `paramsHash` is the SHA-256 (hex) of the canonical JSON of the start's
 * `params` exactly as sent; `commentHash` the SHA-256 (hex) of the approval's
 * comment or the rejection's reason (the empty string when there is none).
 * `expiresAt` is an ISO-8601 UTC time; the worker refuses a signature after it.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../config.js';

export interface StartClaim {
  runbook: string;
  env: string;
  params: Record<string, unknown>;
  requestId: string;
  expiresAt: string;
}

export interface DecisionClaim {
  workflowId: string;
  runId: string;
  waitId: string;
  decision: 'approved' | 'rejected';
  /** The approval's comment or the rejection's reason. */
  comment?: string;
  expiresAt: string;
}

export function startMessage(claim: StartClaim): string {
  const { runbook, env, params, requestId, expiresAt } = claim;
  return canonicalJson({ runbook, env, paramsHash: sha256(canonicalJson(params)), requestId, expiresAt });
}

export function decisionMessage(claim: DecisionClaim): string {
  const { workflowId, runId, waitId, decision, comment, expiresAt } = claim;
  return canonicalJson({ workflowId, runId, waitId, decision, commentHash: sha256(comment ?? ''), expiresAt });
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
