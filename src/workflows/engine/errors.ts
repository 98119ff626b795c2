import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { FailureType } from '../../messages.js';

/**
 * The innermost meaningful message of a failure chain: an activity failure's own
 * message is "Activity task failed", its cause says what went wrong.
 */
export function describeError(err: unknown): string {
  let current: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  while (current instanceof TemporalFailure && current.cause) {
    current = current.cause;
    if (current instanceof Error && current.message) message = current.message;
  }
  return message;
}

/** The ApplicationFailure type at the root of a failure chain, if any. */
export function failureType(err: unknown): string | undefined {
  let current: unknown = err;
  let type: string | undefined;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure && current.type) type = current.type;
    current = (current as { cause?: unknown }).cause;
  }
  return type;
}

/** Refuses bad input found in preflight: the CLI reports it with exit 2, and nothing has changed. */
export function refuseIf(refused: boolean, field: string, why: string): void {
  if (refused) throw ApplicationFailure.create({ type: FailureType.invalidInput, message: `${field}: ${why}`, nonRetryable: true });
}

/** Refuses a run whose target another run holds (say, one ECS service across runbooks): the CLI exits 3, nothing changed. */
export function refuseIfHeld(holders: string[], field: string, what: string): void {
  if (holders.length) {
    throw ApplicationFailure.create({
      type: FailureType.conflict,
      message: `${field}: ${what} is held by ${holders.join(', ')}: one runbook at a time per service`,
      nonRetryable: true,
    });
  }
}
