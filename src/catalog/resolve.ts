/**
 * The worker's own reading of a run's input: the only place where policy, the
 * AWS connection and every default are decided. Whatever a client sends, a run
 * gets the rules of the worker's environments file, or is refused.
 */
import { environmentHash, runPolicy, type EnvironmentConfig, type RunbooksConfig } from '../config.js';
import { RUNBOOK_INPUT_FIELDS, SIGNAL_LIMITS, runWorkflowId, type ResolvedRun } from '../messages.js';
import type { Catalog } from './index.js';
import { InputError } from './errors.js';
import { validateParams } from './inputs.js';

export interface RunToResolve {
  workflowId: string;
  workflowType: string;
  input: unknown;
}

/** Fields older clients put in the input, and why the worker no longer takes them from there. */
const NOT_FROM_THE_STARTER: Record<string, string> = {
  policy: "approval rules come from the worker's environments file",
  aws: "the AWS connection comes from the worker's environments file",
  uiUrl: "links come from the worker's config",
  target: 'the worker derives the target from the parameters',
};

export function resolveRun(config: RunbooksConfig, catalog: Catalog, run: RunToResolve): ResolvedRun {
  const input = run.input;
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new InputError('input: expected an object {runbook, env, params, dryRun, startedBy, requestId}');
  const given = input as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(RUNBOOK_INPUT_FIELDS as readonly string[]).includes(key)) {
      throw new InputError(
        `input.${key}: not accepted from the starter${NOT_FROM_THE_STARTER[key] ? `; ${NOT_FROM_THE_STARTER[key]}` : ''} (a start carries only ${RUNBOOK_INPUT_FIELDS.join(', ')})`,
      );
    }
  }
  const runbook = text(given, 'runbook', SIGNAL_LIMITS.id);
  const envName = text(given, 'env', SIGNAL_LIMITS.id);
  const startedBy = text(given, 'startedBy', SIGNAL_LIMITS.identity).trim().toLowerCase();
  text(given, 'requestId', SIGNAL_LIMITS.id);
  if (typeof given.dryRun !== 'boolean') throw new InputError('input.dryRun: expected true or false');
  const params = given.params;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new InputError('input.params: expected an object');

  const definition = catalog.get(runbook);
  if (definition.workflowType !== run.workflowType) {
    throw new InputError(`input.runbook: ${runbook} runs as workflow ${definition.workflowType}, not ${run.workflowType}`);
  }
  const env = knownEnvironment(config, envName);
  const merged = { ...structuredClone(env.runbooks[runbook] ?? {}), ...(params as Record<string, unknown>) };
  const validated = validateParams(definition, env, merged);
  const target = definition.target(validated);
  const expected = runWorkflowId(runbook, env.name, target);
  if (run.workflowId !== expected) {
    throw new InputError(
      `workflow ID '${run.workflowId}' does not match the run: its ID must be '${expected}' (<runbook>:<env>:<target>), the lock on its target`,
    );
  }
  return {
    target,
    params: definition.prepare ? definition.prepare(validated, env) : validated,
    policy: runPolicy(env),
    envHash: environmentHash(env),
    services: definition.services?.(validated) ?? [],
    startedBy,
  };
}

function knownEnvironment(config: RunbooksConfig, name: string): EnvironmentConfig {
  const env = Object.hasOwn(config.environments, name) ? config.environments[name] : undefined;
  if (!env)
    throw new InputError(`input.env: '${name}' is not an environment this worker knows (${Object.keys(config.environments).join(', ')})`);
  return { ...env, name };
}

function text(given: Record<string, unknown>, field: string, max: number): string {
  const value = given[field];
  if (typeof value !== 'string' || !value.trim()) throw new InputError(`input.${field}: expected a non-empty string`);
  if (value.length > max) throw new InputError(`input.${field}: at most ${max} characters`);
  return value;
}
