/** What the CLI needs to know about a runbook before any worker runs it. */
import type { z } from 'zod';
import type { Plan } from '../workflows/engine/plan.js';
import type { EnvironmentConfig } from '../config.js';

export interface RunbookDefinition<S extends z.ZodTypeAny = z.ZodTypeAny> {
  /** CLI name, e.g. `rolling-restart`. */
  name: string;
  /** Workflow function name, e.g. `rollingRestart`. */
  workflowType: string;
  description: string;
  /** Inputs; each field's `.describe()` is shown by `runbook describe`. */
  params: S;
  plan: Plan;
  /** What the run holds exclusively: part of the workflow ID, so two runs cannot touch it at once. */
  target(params: z.infer<S>): string;
  /** ECS services the run changes besides its target: no other runbook may change them while it is open. */
  services?(params: z.infer<S>): string[];
  /** One line for the Temporal UI ("restart app on sandbox: 3 tasks -> 3 new"). */
  summary(params: z.infer<S>, env: EnvironmentConfig): string;
  /** Rules that depend on the environment; returns "field: rule" when refused. */
  check?(params: z.infer<S>, env: EnvironmentConfig): string | null;
  /** Turns validated inputs into what the workflow receives (e.g. adds the environment's AWS connection). */
  prepare?(params: z.infer<S>, env: EnvironmentConfig): unknown;
}

export function defineRunbook<S extends z.ZodTypeAny>(definition: RunbookDefinition<S>): RunbookDefinition<S> {
  return definition;
}
