/**
 * Turns what the operator gave (environment defaults, an input file, --set
 * pairs) into validated runbook inputs, before anything starts.
 */
import type { z } from 'zod';
import { approvalPolicy, formatIssues, type EnvironmentConfig } from '../config.js';
import type { RunbookInput } from '../messages.js';
import { UsageError } from '../cli/errors.js';
import type { RunbookDefinition } from './definition.js';

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
  for (const pair of given.sets ?? []) applySet(merged, pair);
  const parsed = definition.params.safeParse(merged);
  if (!parsed.success) throw new UsageError(`invalid input for ${definition.name}: ${formatIssues(parsed.error)}`);
  const refused = definition.check?.(parsed.data, env);
  if (refused) throw new UsageError(`invalid input for ${definition.name} on ${env.name}: ${refused}`);
  return parsed.data;
}

function applySet(target: Record<string, unknown>, pair: string): void {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set ${pair}: expected key=value`);
  const keys = pair.slice(0, eq).split('.');
  const raw = pair.slice(eq + 1);
  let node: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = (node[key] = typeof next === 'object' && next !== null ? next : {}) as Record<string, unknown>;
  }
  node[keys.at(-1)!] = parseValue(raw);
}

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
