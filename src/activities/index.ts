/**
 * Every activity the runbook worker registers, built from the clients it is
 * given so tests can hand in their own (pointed at the local stack).
 */
import { notifyCheckpoint } from './notify.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ActivityDeps {}

export function createActivities(_deps: ActivityDeps = {}) {
  return { notifyCheckpoint };
}

export type Activities = ReturnType<typeof createActivities>;
