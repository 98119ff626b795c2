/** Keeping long activities visibly alive. */
import { Context } from '@temporalio/activity';

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
