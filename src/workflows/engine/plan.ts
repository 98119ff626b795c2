/**
 * A runbook's plan: its steps in the order the runbook gives them, and which of
 * them are checkpoints. Shared by the workflow (to show pending steps) and the
 * catalog (to describe the runbook before it runs).
 */
export interface Plan<S extends string = string, C extends S = S> {
  readonly steps: readonly S[];
  readonly checkpoints: readonly C[];
}

/** The names of a plan's steps, so `rb.change('raise-desried', …)` does not compile. */
export type StepName<Pl extends Plan> = Pl['steps'][number];
/** The names of a plan's checkpoints. */
export type CheckpointName<Pl extends Plan> = Pl['checkpoints'][number];

export function definePlan<const S extends readonly string[], const C extends readonly S[number][]>(plan: {
  steps: S;
  checkpoints?: C;
}): { steps: S; checkpoints: C } {
  const seen = new Set<string>();
  for (const step of plan.steps) {
    if (seen.has(step)) throw new Error(`plan names step '${step}' twice`);
    seen.add(step);
  }
  return { steps: plan.steps, checkpoints: (plan.checkpoints ?? []) as C };
}
