/**
 * Test gates: points where an activity can be held so that an end-to-end test
 * acts at an exact moment (e.g. tampers with a copy between the copy and its
 * verification), with no race and no sleep. Inert unless the worker runs with
 * RUNBOOK_TEST_GATES_DIR and a test has armed the gate by creating
 * `<dir>/<gate>.hold`; the activity then creates `<gate>.reached` and waits,
 * heartbeating, until the test creates `<gate>.open`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';

export const TEST_GATES_DIR_ENV = 'RUNBOOK_TEST_GATES_DIR';

/** Holds here while the gate is armed and not yet open; heartbeats `details` meanwhile, so an activity's checkpoint stands. */
export async function passTestGate(gate: string, details?: unknown): Promise<void> {
  const dir = process.env[TEST_GATES_DIR_ENV];
  if (!dir || !existsSync(join(dir, `${gate}.hold`))) return;
  writeFileSync(join(dir, `${gate}.reached`), '');
  const context = Context.current();
  while (!existsSync(join(dir, `${gate}.open`))) {
    context.heartbeat(details);
    // Rejects with a CancelledFailure when the run is cancelled meanwhile.
    await context.sleep(100);
  }
}
