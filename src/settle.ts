/**
 * Like Promise.all, but settles only once every promise has settled: when one
 * fails, the others are not left running behind the caller's back (an undo
 * must never start while copies are still in flight). Pure: workflows use it too.
 */
export async function settleAll<T>(work: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
