/**
 * What a parent and its guard (guard.ts) tell each other. Separate from the
 * guard itself, which starts working the moment it is imported.
 */

/** The environment variable holding the GuardConfig as JSON. */
export const GUARD_CONFIG_ENV = 'RUNBOOK_STACK_GUARD_CONFIG';

export interface GuardConfig {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Sent to the server alone, so it can shut its own children down in order. */
  stopSignal: NodeJS.Signals;
  /** How long a clean shutdown may take before the group is SIGKILLed. */
  graceMs: number;
  /** Paths deleted once the server is gone, even when our parent was killed. */
  removeAfterStop: string[];
}

export type GuardMessage =
  | { type: 'started'; pid: number }
  | { type: 'spawn-failed'; message: string }
  | { type: 'exited'; code: number | null; signal: string | null };
