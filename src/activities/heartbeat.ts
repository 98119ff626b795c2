/** Keeping long activities visibly alive. */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';

const EVERY_MS = 2_000;

/**
 * Runs `work` while heartbeating every two seconds with what `details()` says
 * then. Long activities heartbeat between their units of work too, but one
 * unit (a big table's checksum query, a large file's transfer, an instance
 * that takes minutes to modify) must not outlast the heartbeat timeout.
 */
export async function heartbeatWhile<T>(work: () => Promise<T>, details: () => unknown = () => undefined): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(details()), EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}

/**
 * Called between units of work: throws the CancelledFailure the worker
 * delivered with a heartbeat's answer, so a cancelled activity starts no new
 * unit. Units already in flight finish first (see `settleAll` in src/settle.ts), so the undo
 * that follows never races them.
 */
export function throwIfCancelled(): void {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new CancelledFailure(String(signal.reason ?? 'cancelled'));
}
