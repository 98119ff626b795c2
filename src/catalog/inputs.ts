/**
 * Turns what the operator gave (environment defaults, an input file, --set
 * pairs) into validated runbook inputs. The CLI runs it for fast feedback
 * before anything starts; the worker runs it again in every run's resolve step
 * (`resolve.ts`), against its own config, and only the worker's verdict counts.
 */
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { formatIssues, type EnvironmentConfig } from '../config.js';
import { runWorkflowId, type RunbookInput } from '../messages.js';
import type { RunbookDefinition } from './definition.js';
import { InputError } from './errors.js';
import { applySetPairs } from './set-pairs.js';

export interface OperatorInputs {
  /** Parsed --input file. */
  file?: Record<string, unknown>;
  /** `key=value` pairs; dotted keys reach into objects, values are JSON when they parse as JSON. */
  sets?: string[];
}

export interface StartRequest {
  workflowId: string;
  workflowType: string;
  summary: string;
  target: string;
  input: RunbookInput;
}

export function buildStartRequest(
  definition: RunbookDefinition,
  env: EnvironmentConfig,
  given: OperatorInputs,
  run: { startedBy: string; dryRun: boolean },
): StartRequest {
  const params = mergeInputs(definition, env, given);
  const validated = validateParams(definition, env, params);
  const target = definition.target(validated);
  return {
    workflowId: runWorkflowId(definition.name, env.name, target),
    workflowType: definition.workflowType,
    summary: `${run.dryRun ? '[dry run] ' : ''}${definition.summary(validated, env)}`,
    target,
    input: { runbook: definition.name, env: env.name, params, dryRun: run.dryRun, startedBy: run.startedBy, requestId: randomUUID() },
  };
}

/** The environment's defaults for the runbook, then the input file, then each --set pair. */
export function mergeInputs(definition: RunbookDefinition, env: EnvironmentConfig, given: OperatorInputs): Record<string, unknown> {
  const merged: Record<string, unknown> = structuredClone(env.runbooks[definition.name] ?? {});
  Object.assign(merged, given.file ?? {});
  applySetPairs(merged, given.sets ?? []);
  return merged;
}

/** The runbook's schema, then its rules for this environment; throws an InputError naming the field. */
export function validateParams(
  definition: RunbookDefinition,
  env: EnvironmentConfig,
  merged: Record<string, unknown>,
): z.infer<typeof definition.params> {
  const parsed = definition.params.safeParse(merged);
  if (!parsed.success) throw new InputError(`invalid input for ${definition.name}: ${formatIssues(parsed.error)}`);
  const refused = definition.check?.(parsed.data, env);
  if (refused) throw new InputError(`invalid input for ${definition.name} on ${env.name}: ${refused}`);
  return parsed.data;
}
