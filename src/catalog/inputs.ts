/**
 * Turns what the operator gave (environment defaults, an input file, --set
 * pairs) into validated runbook inputs, before anything starts.
 */
import type { z } from 'zod';
import { approvalPolicy, formatIssues, type EnvironmentConfig } from '../config.js';
import type { RunbookInput } from '../messages.js';
import { UsageError } from '../cli/errors.js';
import type { RunbookDefinition } from './definition.js';
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
  input: RunbookInput<unknown>;
}

export function buildStartRequest(
  definition: RunbookDefinition,
  env: EnvironmentConfig,
  given: OperatorInputs,
  run: { startedBy: string; dryRun: boolean },
): StartRequest {
  const params = validateParams(definition, env, given);
  const target = definition.target(params);
  return {
    workflowId: `${definition.name}:${env.name}:${target}`,
    workflowType: definition.workflowType,
    summary: `${run.dryRun ? '[dry run] ' : ''}${definition.summary(params, env)}`,
    input: {
      runbook: definition.name,
      env: env.name,
      target,
      startedBy: run.startedBy,
      dryRun: run.dryRun,
      policy: approvalPolicy(env),
      params: definition.prepare ? definition.prepare(params, env) : params,
    },
  };
}

export function validateParams(definition: RunbookDefinition, env: EnvironmentConfig, given: OperatorInputs): z.infer<typeof definition.params> {
  const merged: Record<string, unknown> = structuredClone(env.runbooks[definition.name] ?? {});
  Object.assign(merged, given.file ?? {});
  applySetPairs(merged, given.sets ?? []);
  const parsed = definition.params.safeParse(merged);
  if (!parsed.success) throw new UsageError(`invalid input for ${definition.name}: ${formatIssues(parsed.error)}`);
  const refused = definition.check?.(parsed.data, env);
  if (refused) throw new UsageError(`invalid input for ${definition.name} on ${env.name}: ${refused}`);
  return parsed.data;
}
