import { ActivityCancellationType, proxyActivities, type ActivityOptions } from '@temporalio/workflow';

let runningStepSummary: string | undefined;
let changeWaitsOnCancel = false;

/** Set by the engine when a step starts, so every activity it calls carries the step's plain-words summary in the UI. */
export function setStepSummary(summary: string | undefined): void {
  runningStepSummary = summary;
}

/**
 * Set by the engine while a change step runs (in runs started since the
 * `cancel-waits-for-change` marker): a cancel then waits until the change
 * activity has stopped, so its undo never races copies still in flight.
 */
export function setChangeStep(changing: boolean): void {
  changeWaitsOnCancel = changing;
}

/**
 * Like `proxyActivities`, but each call is labelled in the Temporal UI with the
 * summary of the step that makes it ("raise desired count of app 2 -> 4").
 */
export function stepActivities<A extends object>(options: ActivityOptions): A {
  const proxy = proxyActivities<Record<string, ActivityFunctionWithOptions>>(options);
  return new Proxy({} as A, {
    get(_target, name) {
      if (typeof name !== 'string') return undefined;
      const activity = proxy[name]!;
      return (...args: unknown[]) => {
        const overrides: ActivityOptions = {
          ...(runningStepSummary ? { summary: runningStepSummary } : {}),
          ...(changeWaitsOnCancel ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
        } as ActivityOptions;
        return Object.keys(overrides).length ? activity.executeWithOptions(overrides, args) : activity(...args);
      };
    },
  });
}

type ActivityFunctionWithOptions = ((...args: unknown[]) => Promise<unknown>) & {
  executeWithOptions(options: ActivityOptions, args: unknown[]): Promise<unknown>;
};
