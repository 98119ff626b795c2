/**
 * Who may decide a checkpoint, as a pure function of the run's state, so the
 * workflow's signal handlers, the CLI (before it sends) and the unit tests share
 * one rule. The workflow's verdict is the one that counts.
 */
import type { DecideArgs, Decision, Refusal, WaitingFor } from '../../messages.js';

/** What the rule looks at: all of it is in the run's status, so the CLI can check before it sends. */
export interface ApprovalState {
  env: string;
  startedBy: string;
  /** The run being decided. */
  runId: string;
  waitingFor: WaitingFor | null;
  /** Decision taken but not yet acted on (same workflow task). */
  pending: Decision | null;
  decisions: readonly Decision[];
  refusals?: readonly Refusal[];
  /** Runs started before decisions had to name their checkpoint: kept lenient so they finish as they began. */
  legacy?: boolean;
}

/** Identities compare trimmed and case-folded: `Alice ` and `alice` are one person. */
export function normalizeIdentity(identity: string): string {
  return identity.trim().toLowerCase();
}

/** Why this decision cannot be accepted now, or null when it can. */
export function refusalReason(state: ApprovalState, args: DecideArgs): string | null {
  const by = normalizeIdentity(args.by ?? '');
  if (!by) return 'a decision needs the identity of who decides (--as or RUNBOOK_USER)';
  if (args.decision === 'rejected' && !args.reason?.trim()) return 'a rejection needs a reason';
  if (args.requestId && wasRecorded(state, args.requestId))
    return `request ${args.requestId} was already recorded; a request is accepted once`;
  if (!args.checkpoint && !state.legacy) return 'a decision must name the checkpoint it decides (checkpoint)';
  if (args.runId && args.runId !== state.runId) return `the decision is for run ${args.runId}, but this is run ${state.runId}`;

  const earlier = state.pending ?? lastDecisionFor(state.decisions, args.checkpoint ?? state.waitingFor?.checkpoint);
  if (state.pending || !state.waitingFor) {
    if (earlier) return `checkpoint '${earlier.checkpoint}' was already ${earlier.decision} by ${earlier.by} at ${earlier.at}`;
    return 'the run is not waiting at a checkpoint';
  }
  const waiting = state.waitingFor.checkpoint;
  if (args.checkpoint && args.checkpoint !== waiting) {
    const decided = lastDecisionFor(state.decisions, args.checkpoint);
    if (decided)
      return `checkpoint '${args.checkpoint}' was already ${decided.decision} by ${decided.by} at ${decided.at}; the run now waits at '${waiting}'`;
    return `the run waits at checkpoint '${waiting}', not '${args.checkpoint}'`;
  }
  if (args.waitId && args.waitId !== state.waitingFor.waitId) {
    return `the decision is for wait ${args.waitId}, but the run now waits at ${state.waitingFor.waitId}`;
  }

  const approvers = state.waitingFor.approvers.map(normalizeIdentity);
  const isRequester = by === normalizeIdentity(state.startedBy);
  // The requester may always stop their own run; approving it is what needs a second person.
  if (args.decision === 'rejected' && isRequester) return null;
  if (!approvers.includes('*') && !approvers.includes(by)) {
    return `'${by}' is not an approver in ${state.env} (approvers: ${approvers.join(', ') || 'none'})`;
  }
  if (args.decision === 'approved' && isRequester && !state.waitingFor.allowSelfApproval) {
    return `'${by}' started this run and ${state.env} requires approval by someone else`;
  }
  return null;
}

function wasRecorded(state: ApprovalState, requestId: string): boolean {
  return [...state.decisions, ...(state.refusals ?? [])].some((d) => d.requestId === requestId) || state.pending?.requestId === requestId;
}

function lastDecisionFor(decisions: readonly Decision[], checkpoint: string | undefined): Decision | undefined {
  if (!checkpoint) return undefined;
  return [...decisions].reverse().find((d) => d.checkpoint === checkpoint);
}
