/**
 * What a long activity heartbeats for operators to see: how far it got. An
 * activity adds it to its heartbeat details as `progress`, next to whatever
 * it resumes from (`context.heartbeat({ ...checkpoint, progress })`);
 * `runbook watch` and `runbook status` read it from the pending activity.
 */
export interface HeartbeatProgress {
  /** Units done so far ("objects", "healthy tasks", "tables"). */
  done: number;
  /** Units wanted in all, when known: gives a bar and an ETA. */
  total?: number;
  unit: string;
  /** Bytes handled so far, when the work moves bytes: gives a byte rate. */
  bytes?: number;
  /** A count that goes up and down (tasks healthy), not work done: no rate, no ETA. */
  level?: boolean;
  /** Extra facts the count does not say ("1 failed"). */
  note?: string;
}
