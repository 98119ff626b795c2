/**
 * Who may decide a checkpoint, as a pure function of the run's state, so the
 * workflow's signal handlers, the CLI (before it sends) and the unit tests share one rule.
 */
import type { DecideArgs, Decision, WaitingFor } from '../../messages.js';

/** What the rule looks at: all of it is in the run's status, so the CLI can check before it sends. */
export interface ApprovalState {
  env: string;
  startedBy: string;
  waitingFor: WaitingFor | null;
  /** Decision taken but not yet acted on (same workflow task). */
  pending: Decision | null;
  decisions: readonly Decision[];
}

/** Why this decision cannot be accepted now, or null when it can. */
export function refusalReason(state: ApprovalState, args: DecideArgs): string | null {
  const by = args.by?.trim();
  if (!by) return 'a decision needs the identity of who decides (--as or RUNBOOK_USER)';
  if (args.decision === 'rejected' && !args.reason?.trim()) return 'a rejection needs a reason';

  const earlier = state.pending ?? lastDecisionFor(state.decisions, args.checkpoint ?? state.waitingFor?.checkpoint);
  if (state.pending || !state.waitingFor) {
    if (earlier) return `checkpoint '${earlier.checkpoint}' was already ${earlier.decision} by ${earlier.by} at ${earlier.at}`;
    return 'the run is not waiting at a checkpoint';
  }
  const waiting = state.waitingFor.checkpoint;
  if (args.checkpoint && args.checkpoint !== waiting) {
    const decided = lastDecisionFor(state.decisions, args.checkpoint);
    if (decided) return `checkpoint '${args.checkpoint}' was already ${decided.decision} by ${decided.by} at ${decided.at}; the run now waits at '${waiting}'`;
    return `the run waits at checkpoint '${waiting}', not '${args.checkpoint}'`;
  }

  const { approvers, allowSelfApproval } = state.waitingFor;
  const isRequester = by === state.startedBy;
  // The requester may always stop their own run; approving it is what needs a second person.
  if (args.decision === 'rejected' && isRequester) return null;
  if (!approvers.includes('*') && !approvers.includes(by)) {
    return `'${by}' is not an approver in ${state.env} (approvers: ${approvers.join(', ') || 'none'})`;
  }
  if (args.decision === 'approved' && isRequester && !allowSelfApproval) {
    return `'${by}' started this run and ${state.env} requires approval by someone else`;
  }
  return null;
}

function lastDecisionFor(decisions: readonly Decision[], checkpoint: string | undefined): Decision | undefined {
  if (!checkpoint) return undefined;
  return [...decisions].reverse().find((d) => d.checkpoint === checkpoint);
}
