/**
 * Live progress of the running step, read from the heartbeat details of the
 * run's pending activities (`describe()`), and how it reads on a line: done
 * of total, bytes, rate and ETA. Activities that heartbeat a `progress` field
 * (src/progress.ts) say exactly what they count; the heartbeats that predate
 * it (the S3 copy and verify checkpoints, the wait for healthy tasks, the
 * table-by-table verify) are read by their shape.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { formatBytes, formatCount } from '../format.js';
import type { HeartbeatProgress } from '../progress.js';

export interface ActivityProgress extends HeartbeatProgress {
  activity: string;
  attempt: number;
  /** When the activity last heartbeated (ISO). */
  at?: string;
}

type PendingActivity = NonNullable<WorkflowExecutionDescription['raw']['pendingActivities']>[number];

/** Progress of each pending activity that heartbeated something countable. */
export function progressOf(execution: Pick<WorkflowExecutionDescription, 'raw'>): ActivityProgress[] {
  return (execution.raw.pendingActivities ?? []).flatMap((pending) => {
    const found = fromDetails(decodeDetails(pending));
    if (!found) return [];
    return [
      { activity: pending.activityType?.name ?? '?', attempt: pending.attempt ?? 1, at: timestamp(pending.lastHeartbeatTime), ...found },
    ];
  });
}

/** Reads one heartbeat's details: the `progress` convention first, else the shapes today's activities heartbeat. */
export function fromDetails(details: unknown): Omit<ActivityProgress, 'activity' | 'attempt' | 'at'> | undefined {
  if (typeof details === 'number' && Number.isFinite(details)) return { done: details, unit: 'done' };
  if (!details || typeof details !== 'object') return undefined;
  const d = details as Record<string, unknown>;
  if (isProgress(d.progress)) return d.progress;
  if (typeof d.objects === 'number') {
    const mismatches = typeof d.mismatches === 'number' && d.mismatches > 0 ? `${formatCount(d.mismatches)} mismatched` : undefined;
    return {
      done: d.objects,
      unit: 'objects',
      ...(typeof d.bytes === 'number' ? { bytes: d.bytes } : {}),
      ...(mismatches ? { note: mismatches } : {}),
    };
  }
  if (Array.isArray(d.newTaskArns)) {
    const failures = Array.isArray(d.failures) ? d.failures.length : 0;
    return { done: d.newTaskArns.length, unit: 'new tasks running', level: true, ...(failures ? { note: `${failures} failed` } : {}) };
  }
  if (Array.isArray(d.done)) {
    const current = d.current as { table?: string; rows?: number } | undefined;
    return {
      done: d.done.length,
      unit: 'tables verified',
      ...(current?.table ? { note: `at ${current.table} (${formatCount(current.rows ?? 0)} rows)` } : {}),
    };
  }
  return undefined;
}

/**
 * One line: `1,234 / 2,001 objects (62%) · 13.2 MiB · 250 objects/s, 2.6 MiB/s · ETA 3s`.
 * Rates average over the time since `since` (the step's start), so they hold still between polls.
 */
export function formatProgress(progress: ActivityProgress, since?: string, now = Date.now()): string {
  const parts = [
    progress.total
      ? `${formatCount(progress.done)} / ${formatCount(progress.total)} ${progress.unit} (${percent(progress)}%)`
      : `${formatCount(progress.done)} ${progress.unit}`,
  ];
  if (progress.bytes !== undefined) parts.push(formatBytes(progress.bytes));
  const seconds = since ? (Date.parse(progress.at ?? new Date(now).toISOString()) - Date.parse(since)) / 1000 : 0;
  if (seconds > 0 && progress.done > 0 && !progress.level) {
    const rate = progress.done / seconds;
    parts.push(`${formatRate(rate)} ${progress.unit}/s${progress.bytes ? `, ${formatBytes(progress.bytes / seconds)}/s` : ''}`);
    if (progress.total && progress.total > progress.done) parts.push(`ETA ${formatSeconds((progress.total - progress.done) / rate)}`);
  }
  if (progress.note) parts.push(progress.note);
  if (progress.attempt > 1) parts.push(`attempt ${progress.attempt}`);
  return parts.join(' · ');
}

/** `▕██████░░░░▏` for a TTY; empty when the total is unknown. */
export function progressBar(progress: HeartbeatProgress, width = 20): string {
  if (!progress.total) return '';
  const filled = Math.round((Math.min(progress.done, progress.total) / progress.total) * width);
  return `▕${'█'.repeat(filled)}${'░'.repeat(width - filled)}▏`;
}

function percent(progress: HeartbeatProgress): number {
  return Math.floor((Math.min(progress.done, progress.total!) / progress.total!) * 100);
}

function formatRate(rate: number): string {
  return rate >= 10 ? formatCount(rate) : rate.toFixed(1);
}

export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function isProgress(value: unknown): value is HeartbeatProgress {
  const p = value as HeartbeatProgress | undefined;
  return !!p && typeof p === 'object' && typeof p.done === 'number' && typeof p.unit === 'string';
}

function decodeDetails(pending: PendingActivity): unknown {
  const payload = pending.heartbeatDetails?.payloads?.[0];
  if (!payload) return undefined;
  try {
    return defaultPayloadConverter.fromPayload(payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0]);
  } catch {
    return undefined; // an encoded or foreign payload: no progress to show, not an error
  }
}

function timestamp(value: PendingActivity['lastHeartbeatTime']): string | undefined {
  if (!value?.seconds) return undefined;
  return new Date(Number(value.seconds) * 1000 + Math.floor((value.nanos ?? 0) / 1e6)).toISOString();
}
