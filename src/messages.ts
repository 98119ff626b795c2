/**
 * The contract between runbook workflows and everything outside them: signals,
 * updates, queries, search attributes and the status document. Imported by
 * workflow code, so it must stay free of Node and client imports.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The task queue every runbook worker polls. */
export const TASK_QUEUE = 'runbooks';

export type Phase = 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled' | 'rolled-back';
export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'compensated';

export interface StepStatus {
  name: string;
  status: StepState;
  startedAt?: string;
  endedAt?: string;
  detail?: string;
}

export interface WaitingFor {
  checkpoint: string;
  /** `<checkpoint>#<n>`: a decision that names another wait (an earlier one, or another run's) is refused. */
  waitId: string;
  prompt: string;
  since: string;
  /** Who may decide; `*` means anyone. */
  approvers: string[];
  /** Whether the requester may approve their own run here. */
  allowSelfApproval: boolean;
  /** When the checkpoint gives up and rejects on its own. */
  timeoutAt: string;
}

export interface Decision {
  checkpoint: string;
  decision: 'approved' | 'rejected';
  by: string;
  at: string;
  comment?: string;
  /** Echoes the sender's request ID, so a CLI can confirm its own decision. */
  requestId?: string;
  waitId?: string;
}

/** A decision the run refused (a signal cannot answer its sender, so it is recorded here). */
export interface Refusal {
  checkpoint?: string;
  by: string;
  at: string;
  reason: string;
  requestId?: string;
}

export interface RunStatus {
  workflowId: string;
  runbook: string;
  env: string;
  /** Empty until the worker has resolved the input. */
  target: string;
  phase: Phase;
  dryRun: boolean;
  startedBy: string;
  currentStep: string | null;
  steps: StepStatus[];
  waitingFor: WaitingFor | null;
  decisions: Decision[];
  /** The most recent refused signals (at most REFUSALS_KEPT). */
  refusals: Refusal[];
  /** Refusals beyond those kept. */
  refusalsDropped: number;
  /** The approval policy the worker resolved from its own config (null until resolved). */
  policy: RunPolicy | null;
  /** Hash of the worker's environment entry the run was resolved against. */
  envHash: string | null;
  /** Who asked for the cancellation, when someone did. */
  cancelledBy: { by: string; at: string; reason?: string } | null;
  /** Notices delivered, and the newest ones that failed. */
  notifications: { sent: number; failed: NotificationFailure[] };
  /** Why the run failed or rolled back, in plain words. */
  error: string | null;
  /** The failure type behind `error` (see FailureType), so scripts can tell a refused input from a rollback. */
  errorType: string | null;
  result: unknown;
}

/** Who may approve, and how long each checkpoint waits: resolved by the worker from its own environments file. */
export interface RunPolicy {
  /** Identities allowed to decide, normalised (trimmed, lower case); `*` allows anyone. */
  approvers: string[];
  /** Whether the requester may approve their own run. */
  allowSelfApproval: boolean;
  /** The environment is production-like: risky modes are refused and approval needs a second person. */
  protected: boolean;
  /** Starts and decisions must be signed (the environment lists signers); the verified principal is the identity. */
  signed?: boolean;
  /** Default checkpoint timeout in milliseconds. */
  timeoutMs: number;
  /** Per-checkpoint timeouts in milliseconds. */
  timeoutsMs: Record<string, number>;
  /** Whether anything is announced (the webhooks themselves stay in the worker's config). */
  notify: boolean;
  /** Which named webhooks hear which events; names only, never URLs. */
  notifications: { webhook: string; events: RunEvent[] }[];
}

/** `frozen`: a rollback froze deploys (seed 004: "let everyone know to stop them from deploying newer commits"). */
export type RunEvent = 'started' | 'waiting' | 'reminder' | 'decided' | 'succeeded' | 'failed' | 'rolled-back' | 'cancelled' | 'frozen';

/** One event of a run, as the engine tells it to `notifyRun`. */
export interface RunNotice {
  event: RunEvent;
  webhook: string;
  workflowId: string;
  runbook: string;
  env: string;
  target: string;
  dryRun: boolean;
  startedBy: string;
  /** One line in plain words. */
  summary: string;
  checkpoint?: string;
  waitId?: string;
  prompt?: string;
  approvers?: string[];
  timeoutAt?: string;
  decision?: { decision: 'approved' | 'rejected'; by: string; comment?: string };
  error?: string;
  /** What an event other than the life-cycle ones says (a deploy freeze: who must not deploy what). */
  detail?: string;
}

/** Notices that could not be delivered; a failing receiver never fails or blocks a run. */
export interface NotificationFailure {
  event: RunEvent;
  webhook: string;
  at: string;
  error: string;
}

/**
 * What every runbook workflow receives: only what the operator asked for. The
 * worker resolves everything else (policy, AWS connection, defaults, the target)
 * from its own environments file in the run's first step, and refuses any other field.
 */
export interface RunbookInput {
  runbook: string;
  env: string;
  /** The operator's inputs (environment defaults, --input file, --set pairs), before validation. */
  params: Record<string, unknown>;
  dryRun: boolean;
  /** Who claims to start the run. */
  startedBy: string;
  /** Unique per start request. */
  requestId: string;
  /** Where the environment lists signers: an SSHSIG signature over the start (see src/signing/canonical.ts). */
  signature?: string;
  /** When that signature expires (ISO-8601 UTC); part of what is signed. */
  expiresAt?: string;
}

/** The fields a start may carry; anything else is refused by the worker. */
export const RUNBOOK_INPUT_FIELDS = ['runbook', 'env', 'params', 'dryRun', 'startedBy', 'requestId', 'signature', 'expiresAt'] as const;

/** The input of runs started before the worker resolved inputs itself (policy and prepared params travelled in it). */
export interface LegacyRunbookInput<P> {
  runbook: string;
  env: string;
  target: string;
  startedBy: string;
  dryRun: boolean;
  policy: { approvers: string[]; allowSelfApproval: boolean; timeoutMs: number; timeoutsMs?: Record<string, number>; webhook?: string };
  uiUrl?: string;
  params: P;
}

/** What the worker's `resolveRun` step returns: the run's validated, prepared parameters and its policy. */
export interface ResolvedRun<P = unknown> {
  target: string;
  params: P;
  policy: RunPolicy;
  envHash: string;
  /** ECS services the run changes besides its target (kept in the memo, for the lock across runbooks). */
  services: string[];
  /** The requester claim, normalised. */
  startedBy: string;
}

/** What the sender binds a decision to: the checkpoint (required), and, from the CLI, the run and the wait. */
interface DecisionBinding {
  checkpoint?: string;
  /** The wait decided (`<checkpoint>#<n>` from `waitingFor.waitId`). */
  waitId?: string;
  /** The run decided; a decision meant for an earlier run of the same workflow ID is refused. */
  runId?: string;
  by: string;
  requestId?: string;
  /** Where the environment lists signers: an SSHSIG signature over the decision (see src/signing/canonical.ts). */
  signature?: string;
  /** When that signature expires (ISO-8601 UTC); part of what is signed. */
  expiresAt?: string;
}

export interface ApproveArgs extends DecisionBinding {
  comment?: string;
}

export interface RejectArgs extends DecisionBinding {
  reason: string;
}

/** Sent by `runbook cancel` just before the cancellation, so the run records who cancelled it. */
export interface CancelNote {
  by: string;
  reason?: string;
}

export type DecideArgs = ({ decision: 'approved' } & ApproveArgs) | ({ decision: 'rejected' } & RejectArgs);

/**
 * Decisions are signals, not updates: a signal is ordered in history before the
 * workflow task that handles it, so replay after a crash is deterministic. An
 * update accepted in the same task that reached the checkpoint (as happens when a
 * status query is answered mid-task by a worker recovering from a crash) replays
 * in a different order and fails the run with a nondeterminism error. Senders
 * learn the outcome from the status: the decision or refusal carrying their requestId.
 */
export const approveSignal = defineSignal<[ApproveArgs]>('approve');
export const rejectSignal = defineSignal<[RejectArgs]>('reject');
export const cancelNoteSignal = defineSignal<[CancelNote]>('cancel-note');
export const statusQuery = defineQuery<RunStatus>('status');

/** Search attributes the UI and `runbook ls` filter on; registered on the dev server. */
export const searchAttributes = {
  runbook: defineSearchAttributeKey('RunbookName', SearchAttributeType.KEYWORD),
  env: defineSearchAttributeKey('RunbookEnv', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('RunbookPhase', SearchAttributeType.KEYWORD),
  target: defineSearchAttributeKey('RunbookTarget', SearchAttributeType.KEYWORD),
  startedBy: defineSearchAttributeKey('RunbookStartedBy', SearchAttributeType.KEYWORD),
} as const;

/** Memo key holding the final status, so a finished run can be read without a worker. */
export const FINAL_STATUS_MEMO = 'runbookStatus';
/** Memo key listing the ECS services an open run changes besides its target. */
export const SERVICES_MEMO = 'runbookServices';
/** Memo key holding the policy the worker resolved and the hash of its environment entry. */
export const POLICY_MEMO = 'runbookPolicy';

/** Limits on decision signals: anything longer is refused (and recorded shortened). */
export const SIGNAL_LIMITS = { identity: 128, text: 2048, id: 200, signature: 4096 } as const;
/** Refusals kept in the status; older ones are only counted. */
export const REFUSALS_KEPT = 20;

/** Failure types the CLI maps to exit codes and messages. */
export const FailureType = {
  /** Bad input or missing resources found in preflight: nothing changed (exit 2). */
  invalidInput: 'InvalidInput',
  /** Another run holds what this one would change (the CLI exits 3): nothing changed. */
  conflict: 'Conflict',
  /** A checkpoint was rejected or timed out. */
  rejected: 'CheckpointRejected',
  /** Compensation ran after a failure or rejection. */
  rolledBack: 'RolledBack',
  /** A step failed and nothing needed undoing, or compensation itself failed. */
  failed: 'RunFailed',
} as const;

/** A run's workflow ID, which is also its lock on the target: `<runbook>:<env>:<target>`. */
export function runWorkflowId(runbook: string, env: string, target: string): string {
  return `${runbook}:${env}:${target}`;
}
