/** Human-readable views of runs, steps and runbooks. */
import ora, { type Ora } from 'ora';
import type { RunStatus, StepStatus } from '../messages.js';
import { formatProgress, progressBar, type ActivityProgress } from './progress.js';

const MARK: Record<StepStatus['status'], string> = {
  pending: '·',
  running: '▶',
  done: '✓',
  failed: '✗',
  skipped: '-',
  compensated: '↺',
};

export function formatElapsed(from?: string, to?: string): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(ms / 3_600_000)}h${String(Math.round((ms % 3_600_000) / 60_000)).padStart(2, '0')}m`;
}

export function formatStep(step: StepStatus, width: number): string {
  const elapsed = formatElapsed(step.startedAt, step.endedAt);
  return `  ${MARK[step.status]} ${step.name.padEnd(width)} ${step.status.padEnd(11)} ${elapsed.padStart(7)}  ${step.detail ?? ''}`.trimEnd();
}

export function formatStatus(status: RunStatus, note?: string, progress: ActivityProgress[] = []): string {
  const width = Math.max(4, ...status.steps.map((s) => s.name.length));
  const lines = [`${status.workflowId}  ${status.phase.toUpperCase()}${status.dryRun ? ' (dry run)' : ''}  started by ${status.startedBy}`];
  for (const step of status.steps) {
    lines.push(formatStep(step, width));
    if (step.status === 'running') lines.push(...progressLines(step, progress).map((line) => `      ${line}`));
  }
  if (status.waitingFor) lines.push('', waitingLine(status));
  for (const d of status.decisions)
    lines.push(`  decision: ${d.checkpoint} ${d.decision} by ${d.by} at ${d.at}${d.comment ? ` (${d.comment})` : ''}`);
  for (const r of status.refusals) lines.push(`  refused: ${r.by}${r.checkpoint ? ` at ${r.checkpoint}` : ''}: ${r.reason}`);
  if (status.error) lines.push(`  error: ${status.error}`);
  if (status.result !== null && status.result !== undefined && status.phase === 'succeeded')
    lines.push(`  result: ${JSON.stringify(status.result)}`);
  if (note) lines.push(`  note: ${note}`);
  return lines.join('\n');
}

export function waitingLine(status: RunStatus): string {
  const w = status.waitingFor!;
  return [
    `Waiting at checkpoint '${w.checkpoint}' since ${w.since} (rejects itself at ${w.timeoutAt}): ${w.prompt}`,
    `  approve: runbook approve ${status.workflowId} --checkpoint ${w.checkpoint}`,
    `  reject:  runbook reject ${status.workflowId} --checkpoint ${w.checkpoint} --reason "…"`,
  ].join('\n');
}

/** The running step's progress, one line per activity that reported some. */
export function progressLines(step: StepStatus, progress: ActivityProgress[], options: { bar?: boolean } = {}): string[] {
  return progress.map((p) => {
    const bar = options.bar ? progressBar(p) : '';
    return `${bar ? `${bar} ` : ''}${formatProgress(p, step.startedAt)}`;
  });
}

/** The step that runs now, if any. */
export function runningStep(status: RunStatus): StepStatus | undefined {
  return (
    status.steps.find((s) => s.status === 'running' && s.name === status.currentStep) ?? status.steps.find((s) => s.status === 'running')
  );
}

/** Prints one line per step transition, for logs and terminals alike. */
export class StepTicker {
  private readonly seen = new Map<string, string>();
  private phase?: string;

  constructor(private readonly write: (line: string) => void) {}

  update(status: RunStatus): void {
    const width = Math.max(4, ...status.steps.map((s) => s.name.length));
    for (const step of status.steps) {
      const key = `${step.status}|${step.detail ?? ''}`;
      if (step.status === 'pending' || this.seen.get(step.name) === key) continue;
      this.seen.set(step.name, key);
      this.write(formatStep(step, width));
    }
    if (status.phase !== this.phase) {
      this.phase = status.phase;
      if (status.phase !== 'running') this.write(`run ${status.phase}${status.error ? `: ${status.error}` : ''}`);
    }
  }
}

/**
 * The running step's progress while following a run: on a terminal, one live
 * line with a bar (ora) under the step lines; in logs and pipes, a plain line
 * when the progress changed, at most every `everyMs`.
 */
export class LiveProgress {
  private spinner?: Ora;
  private lastLine = '';
  private lastPrintedAt = 0;

  constructor(
    private readonly options: { tty: boolean; write: (line: string) => void; everyMs?: number; stream?: NodeJS.WritableStream },
  ) {}

  /** A line that stays (a step transition), printed above the live line. */
  print(line: string): void {
    if (!this.spinner) return this.options.write(line);
    this.spinner.clear();
    this.options.write(line);
    this.spinner.render();
  }

  update(status: RunStatus, progress: ActivityProgress[]): void {
    const step = runningStep(status);
    const lines = step ? progressLines(step, progress, { bar: this.options.tty }) : [];
    if (!step || !lines.length) return this.stop();
    const text = `${step.name}: ${lines.join(' | ')}`;
    if (this.options.tty) {
      if (this.spinner) this.spinner.text = text;
      else this.spinner = ora({ text, stream: this.options.stream ?? process.stdout, isEnabled: true, discardStdin: false }).start();
      return;
    }
    const now = Date.now();
    if (text === this.lastLine || now - this.lastPrintedAt < (this.options.everyMs ?? 5_000)) return;
    this.lastLine = text;
    this.lastPrintedAt = now;
    this.options.write(`  … ${text}`);
  }

  stop(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }
}
