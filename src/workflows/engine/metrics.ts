/**
 * Runbook metrics, emitted from workflow code through the SDK's workflow
 * `metricMeter`: the worker forwards them to its runtime's exporter (Prometheus
 * with `runbook worker --metrics`), tagged with namespace, task queue and
 * workflow type besides the tags below. The SDK skips them while a history is
 * replayed, so a run counts once however often a worker replays it. Without a
 * metrics exporter they cost nothing.
 *
 * With the worker's Prometheus options (`countersTotalSuffix`; the SDK's
 * `temporal_` prefix applies to its own metrics only) they are scraped as:
 *   runbook_runs_started_total{runbook, env, dry_run}
 *   runbook_runs_ended_total{runbook, env, phase}
 *   runbook_checkpoint_wait_seconds{runbook, env, checkpoint, decision}   (histogram)
 *   runbook_step_duration_seconds{runbook, env, step, status}             (histogram)
 *   runbook_compensation_runs_total{runbook, env, outcome}
 * each also labelled namespace, taskQueue and workflowType by the SDK.
 */
import { metricMeter } from '@temporalio/workflow';
import type { Phase } from '../../messages.js';

/** Histogram buckets in seconds that fit what is measured (the exporter's default tops out at 10 s). */
export const RUNBOOK_HISTOGRAM_BUCKETS: Record<string, number[]> = {
  runbook_step_duration_seconds: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14_400],
  runbook_checkpoint_wait_seconds: [60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600],
};

export const RUNBOOK_METRICS = {
  runsStarted: 'runbook_runs_started',
  runsEnded: 'runbook_runs_ended',
  checkpointWait: 'runbook_checkpoint_wait_seconds',
  stepDuration: 'runbook_step_duration_seconds',
  compensationRuns: 'runbook_compensation_runs',
} as const;

/** Which run a metric is about. */
export interface RunLabels {
  runbook: string;
  env: string;
}

export function recordRunStarted(run: RunLabels, dryRun: boolean): void {
  metricMeter.createCounter(RUNBOOK_METRICS.runsStarted, 'runs', 'runbook runs started').add(1, { ...run, dry_run: String(dryRun) });
}

export function recordRunEnded(run: RunLabels, phase: Phase): void {
  metricMeter.createCounter(RUNBOOK_METRICS.runsEnded, 'runs', 'runbook runs ended, by final phase').add(1, { ...run, phase });
}

/** How long a checkpoint waited for its decision; `decision` is approved, rejected, timeout or cancelled. */
export function recordCheckpointWait(run: RunLabels, checkpoint: string, decision: string, seconds: number): void {
  metricMeter
    .createHistogram(RUNBOOK_METRICS.checkpointWait, 'float', 's', 'time a checkpoint waited for a decision')
    .record(nonNegative(seconds), { ...run, checkpoint, decision });
}

/** How long a step ran, by how it ended (done or failed). */
export function recordStepDuration(run: RunLabels, step: string, status: string, seconds: number): void {
  metricMeter
    .createHistogram(RUNBOOK_METRICS.stepDuration, 'float', 's', 'time a runbook step took')
    .record(nonNegative(seconds), { ...run, step, status });
}

/** One compensation of a run: `undone` when every undo ran, `failed` when one needs a human. */
export function recordCompensation(run: RunLabels, outcome: 'undone' | 'failed'): void {
  metricMeter.createCounter(RUNBOOK_METRICS.compensationRuns, 'runs', 'runs whose changes were undone').add(1, { ...run, outcome });
}

/** Seconds between two ISO timestamps of the workflow's clock (deterministic in workflow code). */
export function secondsBetween(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

/** Histograms take no negative values; workflow time never runs backwards, but a bad timestamp must not crash a run. */
function nonNegative(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}
