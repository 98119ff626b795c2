/**
 * CodePipeline: pausing a deploy pipeline by disabling the transition into
 * one of its stages, as an operator does in the console ("Disable
 * transition"), and enabling it again afterwards. Artifacts that would enter
 * the stage wait in front of it until the transition is enabled.
 *
 * The transition's `disabledReason` says who holds it: a pause by runbook
 * runs reads `Paused by temporal-runbooks (<runbook>) for runs <run ID> …`.
 * A transition an operator disabled (any other reason) is never touched: the
 * run notes it and leaves it disabled. Runs share a transition they both
 * pause: each adds its run ID, and the last one to resume enables it. So
 * both calls are idempotent: a retried pause finds its own run ID, a retried
 * resume finds it gone.
 */
import {
  DisableStageTransitionCommand,
  EnableStageTransitionCommand,
  GetPipelineStateCommand,
  type CodePipelineClient,
  type StageState,
} from '@aws-sdk/client-codepipeline';
import { ApplicationFailure } from '@temporalio/activity';
import type { AwsConnection } from '../config.js';
import { abortable, awsFailure, clientFactory, invalidInput, type AwsClientFactory } from './aws.js';

/** The transition into `stage` of `pipeline`; `field` is the input that named them (for refusals). */
export interface StageTransitionRef {
  aws: AwsConnection;
  pipeline: string;
  stage: string;
  field: string;
}

/** Which run pauses: the reason names it, so a resume (or a retry) recognises its own pause. */
export interface TransitionHolder {
  runbook: string;
  runId: string;
}

export interface TransitionState {
  enabled: boolean;
  disabledReason?: string;
  lastChangedBy?: string;
  lastChangedAt?: string;
}

export interface PauseResult {
  /** What the run found: enabled (it disabled it), held by other runs (it joined them), or disabled by an operator (left alone). */
  found: 'enabled' | 'runs' | 'operator';
  /** The transition as the run leaves it. */
  state: TransitionState;
}

export interface ResumeResult {
  /** enabled: this run was the last holder; still-held: other runs hold it; left: an operator's pause, or already enabled. */
  outcome: 'enabled' | 'still-held' | 'left';
  state: TransitionState;
}

/** AWS's pattern for `reason` (at most 300 characters). */
const REASON_CHARS = /[^a-zA-Z0-9!@ ().*?-]/g;
const REASON_MAX = 300;
const HELD_BY_RUNS = /^Paused by temporal-runbooks \(([a-z0-9-]+)\) for runs? ([0-9a-zA-Z -]+)$/;

export function createCodePipelineActivities(deps: { aws?: AwsClientFactory }) {
  const clients = clientFactory(deps);

  return {
    /** Preflight, read-only: the pipeline and stage exist and something flows into the stage; how its transition is now. */
    async checkStageTransition(ref: StageTransitionRef): Promise<TransitionState> {
      return transitionState(clients(ref.aws).codePipeline, ref);
    },

    /** Disables the transition into the stage for this run, unless an operator already has (then it is left as it is). */
    async pauseStageTransition(args: StageTransitionRef & { holder: TransitionHolder }): Promise<PauseResult> {
      const client = clients(args.aws).codePipeline;
      const before = await transitionState(client, args);
      const holders = runHolders(before);
      if (!before.enabled && !holders) return { found: 'operator', state: before };
      const runId = safeRunId(args.holder.runId);
      // A retry after a lost result: this run's pause is already on.
      if (holders?.runs.includes(runId)) return { found: holders.runs.length > 1 ? 'runs' : 'enabled', state: before };
      const reason = heldReason(holders?.runbook ?? args.holder.runbook, [...(holders?.runs ?? []), runId]);
      await call(args, `disable the transition into ${args.stage}`, () =>
        client.send(new DisableStageTransitionCommand({ ...target(args), reason }), abortable()),
      );
      return { found: holders ? 'runs' : 'enabled', state: await transitionState(client, args) };
    },

    /** Takes this run's pause off: enables the transition when no other run holds it; an operator's pause stays. */
    async resumeStageTransition(args: StageTransitionRef & { holder: TransitionHolder }): Promise<ResumeResult> {
      const client = clients(args.aws).codePipeline;
      const before = await transitionState(client, args);
      const holders = runHolders(before);
      const runId = safeRunId(args.holder.runId);
      if (before.enabled || !holders?.runs.includes(runId)) return { outcome: 'left', state: before };
      const others = holders.runs.filter((r) => r !== runId);
      if (others.length) {
        const reason = heldReason(holders.runbook, others);
        await call(args, `leave the transition into ${args.stage} to runs ${others.join(' ')}`, () =>
          client.send(new DisableStageTransitionCommand({ ...target(args), reason }), abortable()),
        );
        return { outcome: 'still-held', state: await transitionState(client, args) };
      }
      await call(args, `enable the transition into ${args.stage}`, () =>
        client.send(new EnableStageTransitionCommand(target(args)), abortable()),
      );
      return { outcome: 'enabled', state: await transitionState(client, args) };
    },
  };
}

export type CodePipelineActivities = ReturnType<typeof createCodePipelineActivities>;

function target(ref: StageTransitionRef) {
  return { pipelineName: ref.pipeline, stageName: ref.stage, transitionType: 'Inbound' as const };
}

/** The stage's inbound transition; refusals name the input field (exit 2, nothing changed). */
async function transitionState(client: CodePipelineClient, ref: StageTransitionRef): Promise<TransitionState> {
  const { stageStates = [] } = await call(ref, `read pipeline ${ref.pipeline}`, () =>
    client.send(new GetPipelineStateCommand({ name: ref.pipeline }), abortable()),
  );
  const index = stageStates.findIndex((s) => s.stageName === ref.stage);
  if (index < 0) {
    throw invalidInput(
      `${ref.field}.stage`,
      `pipeline ${ref.pipeline} has no stage ${ref.stage} (its stages: ${stageStates.map((s) => s.stageName).join(', ')})`,
    );
  }
  const state = (stageStates[index] as StageState).inboundTransitionState;
  if (index === 0 || !state) {
    throw invalidInput(
      `${ref.field}.stage`,
      `${ref.stage} is the first stage of ${ref.pipeline}: nothing flows into it, so there is no transition to disable; name the stage that deploys`,
    );
  }
  return {
    enabled: state.enabled !== false,
    ...(state.disabledReason ? { disabledReason: state.disabledReason } : {}),
    ...(state.lastChangedBy ? { lastChangedBy: state.lastChangedBy } : {}),
    ...(state.lastChangedAt ? { lastChangedAt: state.lastChangedAt.toISOString() } : {}),
  };
}

/** One CodePipeline call: a missing pipeline or stage is the operator's input; the rest as every AWS error. */
async function call<T>(ref: StageTransitionRef, what: string, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'PipelineNotFoundException') throw invalidInput(`${ref.field}.name`, `no CodePipeline pipeline ${ref.pipeline}`);
    if (name === 'StageNotFoundException') throw invalidInput(`${ref.field}.stage`, `pipeline ${ref.pipeline} has no stage ${ref.stage}`);
    throw awsFailure(err, what);
  }
}

/** The runs a runbook pause names, or undefined when the transition is enabled or an operator's reason is on it. */
function runHolders(state: TransitionState): { runbook: string; runs: string[] } | undefined {
  if (state.enabled) return undefined;
  const match = HELD_BY_RUNS.exec(state.disabledReason ?? '');
  return match ? { runbook: match[1]!, runs: match[2]!.split(' ').filter(Boolean) } : undefined;
}

function heldReason(runbook: string, runs: string[]): string {
  const reason = `Paused by temporal-runbooks (${runbook}) for run${runs.length > 1 ? 's' : ''} ${runs.join(' ')}`;
  if (reason.length > REASON_MAX) {
    throw ApplicationFailure.create({
      type: 'PipelineHeld',
      message: `${runs.length - 1} runs already hold this pipeline's pause; its reason cannot name another (AWS allows ${REASON_MAX} characters)`,
      nonRetryable: true,
    });
  }
  return reason;
}

/** Run IDs are UUIDs; anything else is reduced to what AWS allows in a reason. */
function safeRunId(runId: string): string {
  return runId.replace(REASON_CHARS, '-').replace(/ /g, '-');
}
