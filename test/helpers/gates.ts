/**
 * The test side of src/activities/test-gates.ts: arm a gate so the activity
 * holds there, wait until a run reaches it, act, then open it.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testStack } from '../setup.js';
import { waitUntil } from './wait-until.js';

export interface ArmedGate {
  /** Resolves once an activity holds at the gate. */
  reached(timeoutMs?: number): Promise<void>;
  isReached(): boolean;
  /** Lets every activity held at the gate, and every later one, through. */
  open(): void;
}

export function armGate(gate: string): ArmedGate {
  const dir = testStack().env.RUNBOOK_TEST_GATES_DIR!;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, gate);
  writeFileSync(`${path}.hold`, '');
  return {
    isReached: () => existsSync(`${path}.reached`),
    reached: (timeoutMs = 120_000) =>
      waitUntil(() => existsSync(`${path}.reached`), { timeoutMs, what: `a run to reach the test gate ${gate}` }),
    open: () => writeFileSync(`${path}.open`, ''),
  };
}
