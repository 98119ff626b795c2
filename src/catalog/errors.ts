/**
 * Input a runbook refuses: a field broke its rule, or is not allowed on that
 * environment. The CLI reports it with exit 2 before anything starts; the
 * worker's resolve step turns it into an `InvalidInput` failure with nothing changed.
 */
export class InputError extends Error {
  override name = 'InputError';
}
