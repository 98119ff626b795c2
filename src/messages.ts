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
  target: string;
  phase: Phase;
  dryRun: boolean;
  startedBy: string;
  currentStep: string | null;
  steps: StepStatus[];
  waitingFor: WaitingFor | null;
  decisions: Decision[];
  refusals: Refusal[];
  /** Why the run failed or rolled back, in plain words. */
  error: string | null;
  /** The failure type behind `error` (see FailureType), so scripts can tell a refused input from a rollback. */
  errorType: string | null;
  result: unknown;
}

/** Who may approve, and how long each checkpoint waits; resolved from the environment's config. */
export interface ApprovalPolicy {
  /** Identities allowed to decide; `*` allows anyone. */
  approvers: string[];
  /** Whether the requester may approve their own run. */
  allowSelfApproval: boolean;
  /** Default checkpoint timeout in milliseconds. */
  timeoutMs: number;
  /** Per-checkpoint timeouts in milliseconds. */
  timeoutsMs?: Record<string, number>;
  /** Webhook told when a checkpoint starts waiting. */
  webhook?: string;
}

/** What every runbook workflow receives: who, where, what, and its own parameters. */
export interface RunbookInput<P> {
  runbook: string;
  env: string;
  target: string;
  startedBy: string;
  dryRun: boolean;
  policy: ApprovalPolicy;
  /** Link to this run in the Temporal UI, used in notifications. */
  uiUrl?: string;
  params: P;
}

export interface ApproveArgs {
  checkpoint?: string;
  by: string;
  comment?: string;
  requestId?: string;
}

export interface RejectArgs {
  checkpoint?: string;
  by: string;
  reason: string;
  requestId?: string;
}

export type DecideArgs =
  | ({ decision: 'approved' } & ApproveArgs)
  | ({ decision: 'rejected' } & RejectArgs);

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

/** Failure types the CLI maps to exit codes and messages. */
export const FailureType = {
  /** Bad input or missing resources found in preflight: nothing changed (exit 2). */
  invalidInput: 'InvalidInput',
  /** A checkpoint was rejected or timed out. */
  rejected: 'CheckpointRejected',
  /** Compensation ran after a failure or rejection. */
  rolledBack: 'RolledBack',
  /** A step failed and nothing needed undoing, or compensation itself failed. */
  failed: 'RunFailed',
} as const;
