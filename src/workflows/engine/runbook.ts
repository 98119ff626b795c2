/**
 * The engine every runbook workflow runs on: named steps with status and
 * timings, checkpoints decided by signals, an undo stack
 * run on failure, rejection or cancel, dry-run plumbing, and the status query.
 * Runbook files only say which steps happen in which order.
 */
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  FINAL_STATUS_MEMO,
  FailureType,
  POLICY_MEMO,
  SERVICES_MEMO,
  REFUSALS_KEPT,
  approveSignal,
  cancelNoteSignal,
  rejectSignal,
  searchAttributes,
  statusQuery,
  type DecideArgs,
  type Decision,
  type LegacyRunbookInput,
  type NotificationFailure,
  type Phase,
  type RunEvent,
  type RunNotice,
  type Refusal,
  type ResolvedRun,
  type RunPolicy,
  type RunStatus,
  type RunbookInput,
  type StepStatus,
  type WaitingFor,
} from '../../messages.js';
import type { NotifyActivities } from '../../activities/notify.js';
import type { ResolveActivities } from '../../activities/resolve.js';
import type { SignatureActivities } from '../../activities/signatures.js';
import { setChangeStep, setStepSummary } from './activities.js';
import { normalizeIdentity, refusalReason } from './approvals.js';
import { parseCancelNote, parseDecision } from './signals.js';
import {
  recordCheckpointWait,
  recordCompensation,
  recordRunEnded,
  recordRunStarted,
  recordStepDuration,
  secondsBetween,
  type RunLabels,
} from './metrics.js';
import { describeError, failureType } from './errors.js';
import type { CheckpointName, Plan, StepName } from './plan.js';
import { formatDuration } from '../../format.js';

export interface Undo<T> {
  /** What undoing does, in plain words ("restore desired count of app to 2"). */
  summary: string;
  /** Must be safe to run whether or not the change happened (it runs after a failed change too). */
  run: (result: T | undefined) => Promise<unknown>;
  /**
   * Still runs on a failure after `commit`: for a temporary hold that must be
   * released however the run ends (a paused deploy pipeline), not for a change
   * the point of no return makes stand.
   */
  keepAfterCommit?: boolean;
}

export interface StepOptions<T> {
  /** The step's detail once done, from its result ("3 tasks running"). */
  detail?: (result: T) => string;
}

export interface DryRunSkippedReadOptions<T> extends StepOptions<T> {
  /** What a dry run returns in place of the read's result. */
  dryResult?: T;
  /** What a dry run records, where "would <summary>" does not say it. */
  wouldDo?: string;
}

export interface ChangeOptions<T> extends StepOptions<T> {
  undo?: Undo<T>;
  /** What a dry run returns in place of the change's result. */
  dryResult?: T;
}

const { notifyCheckpoint, notifyRun } = proxyActivities<NotifyActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

/** Notice failures kept in the status. */
const NOTIFICATION_FAILURES_KEPT = 10;

const { resolveRun } = proxyActivities<ResolveActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 5 },
});

const { verifyDecisionSignature } = proxyActivities<SignatureActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

/**
 * Marks the first signed decision a run hands to the worker to verify: runs
 * before it never scheduled that activity, so their histories replay unchanged.
 */
const SIGNED_DECISIONS = 'signed-decisions';

/**
 * Runs started before this marker carried their policy and prepared parameters
 * in the input; they finish under the rules they started with, so their
 * histories replay. Every run started since resolves its input on the worker.
 */
const WORKER_RESOLVES_INPUT = 'worker-resolves-input';

/**
 * Runs started since this marker wait, on cancel, until the change activity in
 * flight has stopped (WAIT_CANCELLATION_COMPLETED) before any undo runs;
 * earlier runs replay with the SDK's default (TRY_CANCEL).
 */
const CANCEL_WAITS_FOR_CHANGE = 'cancel-waits-for-change';

/** The step every run begins with: the worker checks the input against its own environments file. */
export const RESOLVE_STEP = 'resolve';

/**
 * `S` is the plan's step names and `C` its checkpoint names (see `RunbookOf`),
 * so a misspelt step is a compile error rather than a PlanMismatch at run time.
 */
export class Runbook<P = unknown, S extends string = string, C extends S = S> {
  /** The validated, prepared parameters (set by the resolve step). */
  params!: P;
  readonly dryRun: boolean;
  readonly env: string;
  readonly runbook: string;
  /** The requester, normalised once resolved. */
  startedBy: string;
  /** What the run holds exclusively (set by the resolve step). */
  target = '';
  /** Started before the worker resolved inputs (see WORKER_RESOLVES_INPUT). */
  readonly legacy: boolean;
  /** See CANCEL_WAITS_FOR_CHANGE. */
  private readonly cancelWaitsForChange: boolean;

  private policy: RunPolicy | null = null;
  private envHash: string | null = null;
  private waits = 0;
  private refusalsDropped = 0;
  private cancelledBy: RunStatus['cancelledBy'] = null;
  private readonly notifications: RunStatus['notifications'] = { sent: 0, failed: [] };
  private phase: Phase = 'running';
  private readonly steps: StepStatus[];
  private currentStep: string | null = null;
  private waitingFor: WaitingFor | null = null;
  private pending: Decision | null = null;
  private readonly decisions: Decision[] = [];
  private readonly refusals: Refusal[] = [];
  /** Signed decisions waiting for the worker to verify them (a signal handler cannot call an activity). */
  private readonly unverified: DecideArgs[] = [];
  /** Every signature this run has been sent: a signature decides at most once. */
  private readonly signaturesSeen = new Set<string>();
  private readonly undos: { step: string; summary: string; run: () => Promise<unknown>; keepAfterCommit?: boolean }[] = [];
  private error: string | null = null;
  private committed: string | null = null;
  /** What a failure from here on leaves where (see `keptOnFailure`). */
  private kept: string | null = null;
  private errorType: string | null = null;
  private result: unknown = null;

  constructor(
    private readonly input: RunbookInput | LegacyRunbookInput<P>,
    private readonly plan: Plan,
  ) {
    this.legacy = !patched(WORKER_RESOLVES_INPUT);
    this.cancelWaitsForChange = patched(CANCEL_WAITS_FOR_CHANGE);
    // Only strings are trusted for labels; the resolve step refuses anything else anyway.
    this.runbook = String(input?.runbook ?? '');
    this.env = String(input?.env ?? '');
    this.startedBy = String(input?.startedBy ?? '');
    this.dryRun = input?.dryRun === true;
    this.steps = (this.legacy ? plan.steps : [RESOLVE_STEP, ...plan.steps]).map((name) => ({ name, status: 'pending' }));
    this.registerHandlers();
    // Labelled here rather than only by the starter, so a run started from the Temporal CLI or UI is filterable too.
    if (this.legacy) {
      this.adoptLegacyInput(input as LegacyRunbookInput<P>);
      upsertSearchAttributes([
        { key: searchAttributes.runbook, value: this.runbook },
        { key: searchAttributes.env, value: this.env },
        { key: searchAttributes.target, value: this.target },
        { key: searchAttributes.startedBy, value: this.startedBy },
        { key: searchAttributes.phase, value: this.phase },
      ]);
    } else {
      upsertSearchAttributes([
        { key: searchAttributes.runbook, value: this.runbook.slice(0, 100) },
        { key: searchAttributes.env, value: this.env.slice(0, 100) },
        { key: searchAttributes.startedBy, value: this.startedBy.slice(0, 128) },
        { key: searchAttributes.phase, value: this.phase },
      ]);
    }
    recordRunStarted(this.labels(), this.dryRun);
  }

  /** Metric labels: bounded sets only (runbook and environment names), never targets or people. */
  private labels(): RunLabels {
    return { runbook: this.runbook.slice(0, 100), env: this.env.slice(0, 100) };
  }

  /**
   * The run's first step: the worker re-validates the input against its own
   * environments file and catalog, and hands back the prepared parameters and
   * the approval policy. Nothing in the input can loosen what the worker's config says.
   */
  async resolve(): Promise<void> {
    if (this.legacy) return;
    const { workflowId, runId } = workflowInfo();
    const resolved: ResolvedRun<P> = await this.runStep(
      RESOLVE_STEP,
      `check the inputs of ${this.runbook} against ${this.env} in the worker's config`,
      () => resolveRun({ workflowId, input: this.input }) as Promise<ResolvedRun<P>>,
      {
        detail: (r) =>
          `target ${r.target}; approvers ${r.policy.approvers.join(', ')}${r.policy.allowSelfApproval ? ' (self-approval allowed)' : ''}` +
          `${r.policy.protected ? '; protected environment' : ''}; config ${r.envHash.slice(0, 12)}`,
      },
    );
    this.params = resolved.params;
    this.target = resolved.target;
    this.startedBy = resolved.startedBy;
    this.policy = resolved.policy;
    this.envHash = resolved.envHash;
    upsertSearchAttributes([
      { key: searchAttributes.target, value: this.target },
      { key: searchAttributes.startedBy, value: this.startedBy },
    ]);
    upsertMemo({ [POLICY_MEMO]: { policy: this.policy, envHash: this.envHash, runId }, [SERVICES_MEMO]: resolved.services ?? [] });
    await this.notify('started');
  }

  /**
   * The input of a child run of another runbook. The child resolves it again on
   * the worker, under the child's own rules; `legacy` is what a run started
   * before that passes on (its prepared parameters and its policy).
   */
  childInput(
    runbook: string,
    params: Record<string, unknown>,
    legacy: { target: string; params: unknown },
  ): RunbookInput | LegacyRunbookInput<unknown> {
    if (this.legacy) {
      const { policy, uiUrl } = this.input as LegacyRunbookInput<P>;
      return {
        runbook,
        env: this.env,
        target: legacy.target,
        startedBy: this.startedBy,
        dryRun: false,
        policy,
        ...(uiUrl ? { uiUrl } : {}),
        params: legacy.params,
      };
    }
    return {
      runbook,
      env: this.env,
      params,
      dryRun: false,
      startedBy: this.startedBy,
      requestId: `${(this.input as RunbookInput).requestId}/${runbook}`,
    };
  }

  private adoptLegacyInput(input: LegacyRunbookInput<P>): void {
    this.params = input.params;
    this.target = input.target;
    const { approvers, allowSelfApproval, timeoutMs, timeoutsMs, webhook } = input.policy;
    this.policy = {
      approvers,
      allowSelfApproval,
      protected: false,
      timeoutMs,
      timeoutsMs: timeoutsMs ?? {},
      notify: Boolean(webhook),
      notifications: [],
    };
  }

  /** A step that only reads: it runs for real in a dry run too. */
  read<T>(name: S, summary: string, run: () => Promise<T>, options: StepOptions<T> = {}): Promise<T> {
    return this.runStep(name, summary, run, options);
  }

  /**
   * A step that only reads, but reads what the run's own changes made (the
   * copy to verify, the saved plan to guard, the replication to wait for): a
   * dry run made none of it, so it records what the step would do and returns
   * `dryResult` instead.
   */
  async readUnlessDryRun<T>(name: S, summary: string, run: () => Promise<T>, options: DryRunSkippedReadOptions<T> = {}): Promise<T> {
    if (this.dryRun) {
      this.skip(name, options.wouldDo ?? `would ${summary}`);
      return options.dryResult as T;
    }
    return this.runStep(name, summary, run, options);
  }

  /**
   * A step that changes something. Its undo is registered before it runs, so a
   * change that fails half-way is still undone. A dry run records what it would do.
   */
  async change<T>(name: S, summary: string, run: () => Promise<T>, options: ChangeOptions<T> = {}): Promise<T> {
    if (this.dryRun) {
      this.skip(name, `would ${summary}`);
      return options.dryResult as T;
    }
    const outcome: { result?: T } = {};
    const undo = options.undo;
    if (undo)
      this.undos.push({
        step: name,
        summary: undo.summary,
        run: () => undo.run(outcome.result),
        ...(undo.keepAfterCommit ? { keepAfterCommit: true } : {}),
      });
    setChangeStep(this.cancelWaitsForChange);
    try {
      outcome.result = await this.runStep(name, summary, run, options);
    } finally {
      setChangeStep(false);
    }
    return outcome.result;
  }

  /**
   * The point of no return: what is done from here on stands, so a later
   * failure or rejection ends the run `failed` with nothing undone (say, once the
   * writers run on the new database, putting them back would lose their writes).
   * Undos marked `keepAfterCommit` (temporary holds) stay.
   */
  commit(why: string): void {
    const holds = this.undos.filter((undo) => undo.keepAfterCommit);
    this.undos.splice(0, this.undos.length, ...holds);
    this.committed = why;
  }

  /**
   * Says what a failure from here on leaves where ("s3://new is kept as far as
   * it was copied, for inspection"): the run's error ends with it, its type
   * unchanged. Null says nothing. A cancel is reported as it was asked for.
   */
  keptOnFailure(what: string | null): void {
    this.kept = what;
  }

  /** Why the run failed, in the failure's own words, then what is kept where (see `keptOnFailure`). */
  failureReason(err: unknown): string {
    const reason = describeError(err);
    return this.kept ? `${reason.replace(/\.$/, '')}. ${this.kept}` : reason;
  }

  /** Marks a step as not needed for this run, with the reason. */
  skip(name: S, why: string): void {
    Object.assign(this.step(name), { status: 'skipped', detail: why, startedAt: undefined, endedAt: undefined });
  }

  /**
   * Waits for a human decision. Resolves when approved; throws when rejected or
   * when the timeout passes (a timeout is a rejection: it never lets a destructive step run).
   */
  async checkpoint(name: C, prompt: string): Promise<Decision> {
    const step = this.step(name);
    if (this.dryRun) {
      this.skip(name, `would wait for approval: ${prompt}`);
      return { checkpoint: name, decision: 'approved', by: 'dry-run', at: now() };
    }
    const policy = this.requirePolicy();
    const timeoutMs = policy.timeoutsMs[name] ?? policy.timeoutMs;
    const waitId = `${name}#${++this.waits}`;
    this.waitingFor = {
      checkpoint: name,
      waitId,
      prompt,
      since: now(),
      approvers: policy.approvers,
      allowSelfApproval: policy.allowSelfApproval,
      timeoutAt: new Date(Date.now() + timeoutMs).toISOString(),
    };
    Object.assign(step, { status: 'running', startedAt: now(), endedAt: undefined, detail: prompt });
    this.currentStep = name;
    this.setPhase('waiting');
    this.showCurrent(`Waiting for approval at **${name}** (wait \`${waitId}\`): ${prompt}`);
    await this.notifyWaiting(name, waitId, prompt);

    let decision: Decision;
    try {
      const decided = await this.waitForDecision(name, prompt, timeoutMs);
      decision = decided
        ? this.pending!
        : {
            checkpoint: name,
            decision: 'rejected',
            by: 'timeout',
            at: now(),
            comment: `no decision within ${formatDuration(timeoutMs)}`,
            waitId,
          };
    } catch (err) {
      recordCheckpointWait(this.labels(), name, 'cancelled', secondsBetween(this.waitingFor!.since, now()));
      Object.assign(step, { status: 'failed', endedAt: now(), detail: 'cancelled while waiting' });
      this.waitingFor = null;
      throw err;
    }
    recordCheckpointWait(
      this.labels(),
      name,
      decision.by === 'timeout' ? 'timeout' : decision.decision,
      secondsBetween(this.waitingFor!.since, now()),
    );
    for (const late of this.unverified.splice(0))
      this.refuse(
        late,
        `wait ${waitId} ended (${decision.by === 'timeout' ? 'timed out' : decision.decision}) before this decision was checked`,
      );
    this.pending = null;
    this.waitingFor = null;
    this.decisions.push(decision);
    this.setPhase('running');
    step.endedAt = now();
    const comment = decision.comment ? `: ${decision.comment}` : '';
    await this.notify('decided', {
      checkpoint: name,
      waitId,
      decision: { decision: decision.decision, by: decision.by, ...(decision.comment ? { comment: decision.comment } : {}) },
    });
    if (decision.decision === 'approved') {
      Object.assign(step, { status: 'done', detail: `approved by ${decision.by}${comment}` });
      return decision;
    }
    const what = decision.by === 'timeout' ? `timed out (${decision.comment})` : `rejected by ${decision.by}${comment}`;
    Object.assign(step, { status: 'failed', detail: what });
    throw ApplicationFailure.create({ type: FailureType.rejected, message: `checkpoint '${name}' ${what}`, nonRetryable: true });
  }

  status(): RunStatus {
    return {
      workflowId: workflowInfo().workflowId,
      runbook: this.runbook,
      env: this.env,
      target: this.target,
      phase: this.phase,
      dryRun: this.dryRun,
      startedBy: this.startedBy,
      currentStep: this.currentStep,
      steps: this.steps.map((s) => ({ ...s })),
      waitingFor: this.waitingFor,
      decisions: [...this.decisions],
      refusals: [...this.refusals],
      refusalsDropped: this.refusalsDropped,
      policy: this.policy,
      envHash: this.envHash,
      cancelledBy: this.cancelledBy,
      notifications: { sent: this.notifications.sent, failed: [...this.notifications.failed] },
      error: this.error,
      errorType: this.errorType,
      result: this.result,
    };
  }

  /** Runs the undo stack, newest first; an undo that fails does not stop the others. */
  async compensate(): Promise<{ undone: number; released: string[]; failed: string[] }> {
    let undone = 0;
    /** Holds released past the point of no return: not changes undone, the rest still stands. */
    const released: string[] = [];
    const failed: string[] = [];
    for (const undo of [...this.undos].reverse()) {
      const step = this.step(undo.step);
      this.currentStep = undo.step;
      setStepSummary(`undo: ${undo.summary}`);
      this.showCurrent(`Undoing **${undo.step}**: ${undo.summary}`);
      try {
        await undo.run();
        Object.assign(step, { status: 'compensated', detail: `undone: ${undo.summary}`, endedAt: now() });
        if (this.committed && undo.keepAfterCommit) released.push(undo.summary);
        else undone++;
      } catch (err) {
        Object.assign(step, { status: 'failed', detail: `undo failed (${undo.summary}): ${describeError(err)}`, endedAt: now() });
        failed.push(undo.step);
      }
    }
    this.undos.length = 0;
    return { undone, released, failed };
  }

  recordCompensation(outcome: 'undone' | 'failed'): void {
    recordCompensation(this.labels(), outcome);
  }

  /** "cancelled", and by whom when the canceller said so. */
  cancellation(): string {
    const note = this.cancelledBy;
    return note ? `cancelled by ${note.by}${note.reason ? ` (${note.reason})` : ''}` : 'cancelled';
  }

  /** Why the changes so far stand (see `commit`), or null. */
  standing(): string | null {
    return this.committed;
  }

  /** Records the end of the run; the final status goes into the memo so it can be read without a worker. */
  end(phase: Phase, outcome: { result?: unknown; error?: string; errorType?: string }): void {
    this.result = outcome.result ?? null;
    this.error = outcome.error ?? null;
    this.errorType = outcome.errorType ?? null;
    this.currentStep = null;
    this.waitingFor = null;
    setStepSummary(undefined);
    for (const step of this.steps) {
      if (step.status === 'pending') Object.assign(step, { status: 'skipped', detail: step.detail ?? 'not reached' });
    }
    this.setPhase(phase);
    recordRunEnded(this.labels(), phase);
    this.showCurrent(`Run ${phase}${this.error ? `: ${this.error}` : ''}`);
    upsertMemo({ [FINAL_STATUS_MEMO]: this.status() });
  }

  private async runStep<T>(name: string, summary: string, run: () => Promise<T>, options: StepOptions<T>): Promise<T> {
    const step = this.step(name);
    Object.assign(step, { status: 'running', startedAt: now(), endedAt: undefined, detail: summary });
    this.currentStep = name;
    setStepSummary(summary);
    this.showCurrent(`**${name}**: ${summary}`);
    try {
      const result = await run();
      Object.assign(step, { status: 'done', endedAt: now(), detail: options.detail ? options.detail(result) : summary });
      recordStepDuration(this.labels(), name, 'done', secondsBetween(step.startedAt!, step.endedAt!));
      return result;
    } catch (err) {
      Object.assign(step, { status: 'failed', endedAt: now(), detail: isCancellation(err) ? 'cancelled' : describeError(err) });
      recordStepDuration(this.labels(), name, 'failed', secondsBetween(step.startedAt!, step.endedAt!));
      throw err;
    } finally {
      setStepSummary(undefined);
    }
  }

  private step(name: string): StepStatus {
    const step = this.steps.find((s) => s.name === name);
    if (!step) {
      throw ApplicationFailure.create({
        type: 'PlanMismatch',
        message: `step '${name}' is not in the plan of ${this.input.runbook}`,
        nonRetryable: true,
      });
    }
    return step;
  }

  private registerHandlers(): void {
    setHandler(statusQuery, () => this.status());
    setHandler(approveSignal, (raw: unknown) => this.decideBySignal(raw, 'approved'));
    setHandler(rejectSignal, (raw: unknown) => this.decideBySignal(raw, 'rejected'));
    setHandler(cancelNoteSignal, (raw: unknown) => {
      const note = parseCancelNote(raw);
      if (note) this.cancelledBy = { ...note, at: now() };
    });
  }

  /** Signals cannot answer their sender, so a refused one is logged and kept in the status. Never throws. */
  private decideBySignal(raw: unknown, decision: DecideArgs['decision']): void {
    const parsed = parseDecision(raw, decision);
    if (!parsed.ok) return this.refuse({ by: parsed.by, checkpoint: parsed.checkpoint, requestId: parsed.requestId }, parsed.reason);
    const args = parsed.args;
    if (this.policy?.signed && !this.legacy) return this.queueSigned(args);
    const reason = refusalReason(this.approvalState(), args);
    if (reason) return this.refuse(args, reason);
    this.accept(args);
  }

  /**
   * Where decisions are signed, an unsigned one (a UI or `temporal workflow signal`
   * sender) is refused; a signed one is queued for the wait loop to verify,
   * unless it is already wrong whoever sent it.
   */
  private queueSigned(args: DecideArgs): void {
    if (!args.signature) {
      return this.refuse(
        args,
        `unsigned decision: ${this.env} requires decisions signed with ssh-keygen -Y sign -n temporal-runbooks (runbook approve|reject --key <file>); the Temporal UI cannot decide here`,
      );
    }
    const binding = this.bindingRefusal(args);
    if (binding) return this.refuse(args, binding);
    if (this.signaturesSeen.has(args.signature))
      return this.refuse(args, 'this signature was already used; a signature decides one wait once');
    this.signaturesSeen.add(args.signature);
    this.unverified.push(args);
  }

  /** Keeps the newest refusals and counts the rest, so junk signals cannot grow the status without bound. */
  private refuse(from: { by?: string; checkpoint?: string; requestId?: string }, reason: string): void {
    this.refusals.push({
      ...(from.checkpoint ? { checkpoint: from.checkpoint } : {}),
      by: from.by || '(nobody)',
      at: now(),
      reason,
      ...(from.requestId ? { requestId: from.requestId } : {}),
    });
    if (this.refusals.length > REFUSALS_KEPT) {
      this.refusals.shift();
      this.refusalsDropped++;
    }
    log.warn('decision refused', { reason, by: from.by, checkpoint: from.checkpoint });
  }

  private accept(args: DecideArgs): void {
    const comment = args.decision === 'approved' ? args.comment : args.reason;
    this.pending = {
      checkpoint: this.waitingFor!.checkpoint,
      decision: args.decision,
      by: this.legacy ? args.by.trim() : normalizeIdentity(args.by),
      at: now(),
      ...(comment ? { comment } : {}),
      ...(args.requestId ? { requestId: args.requestId } : {}),
      waitId: this.waitingFor!.waitId,
    };
  }

  private approvalState() {
    return {
      env: this.env,
      startedBy: this.startedBy,
      runId: workflowInfo().runId,
      waitingFor: this.waitingFor,
      pending: this.pending,
      decisions: this.decisions,
      refusals: this.refusals,
      legacy: this.legacy,
    };
  }

  private requirePolicy(): RunPolicy {
    if (!this.policy)
      throw ApplicationFailure.create({
        type: 'PlanMismatch',
        message: 'a checkpoint was reached before the run was resolved',
        nonRetryable: true,
      });
    return this.policy;
  }

  /**
   * Waits for a decision until the checkpoint's timeout; where reminders are
   * routed, one at half the timeout and one shortly before it expires.
   */
  private async waitForDecision(checkpoint: string, prompt: string, timeoutMs: number): Promise<boolean> {
    const summary = `checkpoint ${checkpoint}: rejects itself if undecided after ${formatDuration(timeoutMs)}`;
    const remind = !this.legacy && this.routes('reminder').length > 0;
    const reminders = remind ? [Math.floor(timeoutMs / 2), timeoutMs - Math.min(Math.floor(timeoutMs / 10), 3_600_000)] : [];
    let waited = 0;
    for (const at of reminders) {
      if (await this.decisionWithin(at - waited, summary)) return true;
      waited = at;
      await this.notify('reminder', { checkpoint, waitId: this.waitingFor?.waitId, prompt, timeoutAt: this.waitingFor?.timeoutAt });
    }
    return this.decisionWithin(timeoutMs - waited, summary);
  }

  /**
   * Waits up to `ms` for an accepted decision. Signed decisions arrive as
   * unverified and are verified by the worker here, between waits; a run that
   * is never sent one makes exactly the one `condition` call it always made.
   */
  private async decisionWithin(ms: number, summary: string): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const remaining = deadline - Date.now();
      if (!(await condition(() => this.pending !== null || this.unverified.length > 0, remaining, { summary }))) return false;
      await this.verifySigned();
      if (this.pending) return true;
      if (deadline - Date.now() <= 0) return false;
    }
  }

  /** Hands each queued signed decision to the worker's verify activity, then applies the approval rule to the verified principal. */
  private async verifySigned(): Promise<void> {
    while (this.unverified.length) {
      const args = this.unverified.shift()!;
      const binding = this.bindingRefusal(args);
      if (binding) {
        this.refuse(args, binding);
        continue;
      }
      if (!patched(SIGNED_DECISIONS)) {
        this.refuse(args, 'this run cannot verify signed decisions');
        continue;
      }
      const { workflowId, runId } = workflowInfo();
      const wait = this.waitingFor!;
      let verdict: Awaited<ReturnType<typeof verifyDecisionSignature>>;
      try {
        verdict = await verifyDecisionSignature({
          env: this.env,
          workflowId,
          runId,
          waitId: wait.waitId,
          decision: args.decision,
          comment: args.decision === 'approved' ? args.comment : args.reason,
          ...(args.by ? { by: args.by } : {}),
          signature: args.signature,
          expiresAt: args.expiresAt,
        });
      } catch (err) {
        verdict = { ok: false, reason: `the signature could not be checked: ${describeError(err)}` };
      }
      if (!verdict.ok) {
        this.refuse(args, verdict.reason);
        continue;
      }
      const verified = { ...args, by: verdict.principal };
      // The decision may have been overtaken while it was checked (another decision, or the wait ended).
      const reason = refusalReason(this.approvalState(), verified);
      if (reason) this.refuse(verified, reason);
      else this.accept(verified);
    }
  }

  /** The rule's checks that do not depend on who decides: run, wait, checkpoint, request. */
  private bindingRefusal(args: DecideArgs): string | null {
    const state = this.approvalState();
    const anyone = state.waitingFor ? { ...state.waitingFor, approvers: ['*'], allowSelfApproval: true } : null;
    return refusalReason({ ...state, waitingFor: anyone }, { ...args, by: args.by || 'signer' });
  }

  private async notifyWaiting(checkpoint: string, waitId: string, prompt: string): Promise<void> {
    const policy = this.requirePolicy();
    if (!this.legacy)
      return this.notify('waiting', { checkpoint, waitId, prompt, approvers: policy.approvers, timeoutAt: this.waitingFor?.timeoutAt });
    if (!policy.notify) return;
    const legacy = this.input as LegacyRunbookInput<P>;
    try {
      await notifyCheckpoint({
        webhook: legacy.policy.webhook,
        uiUrl: legacy.uiUrl,
        workflowId: workflowInfo().workflowId,
        runbook: this.runbook,
        env: this.env,
        checkpoint,
        prompt,
        approvers: policy.approvers,
      });
    } catch (err) {
      // A silent pager must not block the run: the checkpoint still waits and shows in the status.
      log.warn('checkpoint notification failed', { checkpoint, error: describeError(err) });
    }
  }

  private routes(event: RunEvent): string[] {
    return (this.policy?.notifications ?? []).filter((route) => route.events.includes(event)).map((route) => route.webhook);
  }

  /**
   * Tells every webhook routed for this event. A receiver that fails after its
   * retries is recorded in the status and never fails or stops the run.
   */
  async notify(event: RunEvent, extra: Partial<RunNotice> = {}): Promise<void> {
    if (this.legacy) return;
    for (const webhook of this.routes(event)) {
      try {
        await notifyRun({
          event,
          webhook,
          workflowId: workflowInfo().workflowId,
          runbook: this.runbook,
          env: this.env,
          target: this.target,
          dryRun: this.dryRun,
          startedBy: this.startedBy,
          summary: `${this.runbook} of ${this.target || '?'} on ${this.env}`,
          ...extra,
        });
        this.notifications.sent++;
      } catch (err) {
        const failure: NotificationFailure = { event, webhook, at: now(), error: describeError(err) };
        this.notifications.failed.push(failure);
        if (this.notifications.failed.length > NOTIFICATION_FAILURES_KEPT) this.notifications.failed.shift();
        log.warn('notification failed', { ...failure });
      }
    }
  }

  private setPhase(phase: Phase): void {
    if (phase === this.phase) return;
    this.phase = phase;
    upsertSearchAttributes([{ key: searchAttributes.phase, value: phase }]);
  }

  private showCurrent(what: string): void {
    const position = this.currentStep ? ` (step ${this.plan.steps.indexOf(this.currentStep) + 1}/${this.plan.steps.length})` : '';
    setCurrentDetails(`${this.runbook} on ${this.env}${position}${this.dryRun ? ' [dry run]' : ''}\n\n${what}`);
  }
}

/** The engine typed for one runbook's plan: `type Swap = RunbookOf<SwapParams, typeof swapPlan>`. */
export type RunbookOf<P, Pl extends Plan> = Runbook<P, StepName<Pl>, CheckpointName<Pl>>;

/**
 * Runs a runbook body on the engine: on success records the result; on failure,
 * rejection or cancellation runs the undo stack (even when cancelled) and ends
 * the run with a phase that says what happened.
 */
export async function runRunbook<P, R, const Pl extends Plan>(
  input: RunbookInput | LegacyRunbookInput<P>,
  plan: Pl,
  body: (rb: RunbookOf<P, Pl>) => Promise<R>,
): Promise<R> {
  const rb = new Runbook<P, StepName<Pl>, CheckpointName<Pl>>(input, plan);
  try {
    await rb.resolve();
    const result = await body(rb);
    await rb.notify('succeeded');
    rb.end('succeeded', { result });
    await condition(allHandlersFinished);
    return result;
  } catch (err) {
    const cancelled = isCancellation(err);
    const reason = cancelled ? rb.cancellation() : rb.failureReason(err);
    // Without its closing period where what was undone follows after a semicolon.
    const bare = reason.replace(/\.$/, '');
    const { undone, released, failed } = await CancellationScope.nonCancellable(() => rb.compensate());
    if (undone || released.length || failed.length) rb.recordCompensation(failed.length ? 'failed' : 'undone');
    const standing = rb.standing();
    // Past the point of no return the run is not rolled back, whatever later changes were undone.
    const phase = failed.length ? 'failed' : cancelled ? 'cancelled' : undone && !standing ? 'rolled-back' : 'failed';
    const error = failed.length
      ? `${bare}; undo failed for ${failed.join(', ')}: manual action needed${standing ? `; standing: ${standing}` : ''}`
      : standing
        ? `${bare}; ${undone ? `${undone} later change(s) undone, the rest stands` : 'nothing undone'}: ${standing}` +
          (released.length ? `; released: ${released.join('; ')}` : '')
        : undone
          ? `${bare}; ${undone} change(s) undone`
          : reason;
    const type = cancelled ? 'Cancelled' : endFailureType(phase, failureType(err));
    await CancellationScope.nonCancellable(() => rb.notify(phase, { error }));
    rb.end(phase, { error, errorType: type });
    await condition(allHandlersFinished);
    if (cancelled) throw err;
    throw ApplicationFailure.create({ type, message: error, nonRetryable: true });
  }
}

function endFailureType(phase: Phase, cause: string | undefined): string {
  if (phase === 'rolled-back') return FailureType.rolledBack;
  if (cause === FailureType.invalidInput || cause === FailureType.rejected || cause === FailureType.conflict) return cause;
  return FailureType.failed;
}

function now(): string {
  return new Date().toISOString();
}
