/**
 * The environments file: which environments exist, where their AWS and
 * databases are, who approves, and the default inputs of each runbook there.
 * Validated on load; every error names the field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { durationSchema } from './duration.js';
import { secretRefSchema } from './secret-refs.js';
import type { ApprovalPolicy } from './messages.js';

const duration = durationSchema;

const awsSchema = z
  .object({
    region: z.string().min(1),
    /** Set for emulators (moto) or VPC endpoints; unset for real AWS. */
    endpoint: z.string().url().optional(),
    /** Named profile from ~/.aws; unset uses the default credential chain. */
    profile: z.string().min(1).optional(),
  })
  .strict();

const approvalsSchema = z
  .object({
    approvers: z.array(z.string().min(1)).min(1).default(['*']),
    allowSelfApproval: z.boolean().default(false),
    timeout: duration.default('24h'),
    timeouts: z.record(duration).default({}),
    webhook: z.string().url().optional(),
  })
  .strict();

/**
 * Terraform on this environment's workers. `dirs` is the allowlist runbooks
 * pick a directory from by name (never a free path); `credentials` names the
 * secrets Terraform variables may take, by logical name.
 */
const terraformSchema = z
  .object({
    dirs: z.record(z.string().regex(/^\//, 'must be an absolute path on the worker')).default({}),
    /** A Terraform CLI configuration (TF_CLI_CONFIG_FILE) for runs here, e.g. a provider mirror. */
    cliConfig: z.string().regex(/^\//, 'must be an absolute path on the worker').optional(),
    /** Logical credential name -> secret reference (env:NAME, secretsmanager:<arn>[#key]). */
    credentials: z.record(secretRefSchema).default({}),
  })
  .strict();

const environmentSchema = z
  .object({
    description: z.string().optional(),
    /** Production-like: refuses risky modes (e.g. db-uri region updates). */
    protected: z.boolean().default(false),
    aws: awsSchema,
    approvals: approvalsSchema.default({}),
    terraform: terraformSchema.optional(),
    /** Default inputs per runbook; validated against each runbook's inputs when a run starts. */
    runbooks: z.record(z.record(z.unknown())).default({}),
  })
  .strict();

const configSchema = z
  .object({
    temporal: z
      .object({ address: z.string().optional(), namespace: z.string().optional(), uiUrl: z.string().url().optional() })
      .strict()
      .default({}),
    /** Modules that add runbooks (see README, "Adding a runbook"). */
    plugins: z.array(z.string()).default([]),
    environments: z.record(environmentSchema).refine((envs) => Object.keys(envs).length > 0, 'needs at least one environment'),
  })
  .strict();

export type RunbooksConfig = z.infer<typeof configSchema> & { path: string };
export type EnvironmentConfig = z.infer<typeof environmentSchema> & { name: string };
export type AwsConnection = z.infer<typeof awsSchema>;
export type TerraformConfig = z.infer<typeof terraformSchema>;

export class ConfigError extends Error {}

/**
 * Where the config comes from when no --config is given: RUNBOOK_CONFIG; else,
 * while `runbook dev` runs here, the config it wrote (the sandbox plus
 * ./runbooks.config.yaml); else ./runbooks.config.yaml.
 */
export function defaultConfigPath(cwd = process.cwd()): string | undefined {
  if (process.env.RUNBOOK_CONFIG) return process.env.RUNBOOK_CONFIG;
  if (existsSync(resolve(cwd, '.runbook/dev.json'))) return resolve(cwd, '.runbook/config.yaml');
  const own = resolve(cwd, 'runbooks.config.yaml');
  return existsSync(own) ? own : undefined;
}

export function loadConfig(path: string | undefined): RunbooksConfig {
  if (!path) {
    throw new ConfigError('no environments config: pass --config, set RUNBOOK_CONFIG, add runbooks.config.yaml, or run `runbook dev` for the sandbox');
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, path = '<config>'): RunbooksConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config ${path} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`config ${path}: ${formatIssues(parsed.error)}`);
  return { ...parsed.data, path: resolve(path) };
}

export function environment(config: RunbooksConfig, name: string): EnvironmentConfig {
  const env = config.environments[name];
  if (!env) {
    throw new ConfigError(`unknown environment '${name}' (known in ${config.path}: ${Object.keys(config.environments).join(', ')})`);
  }
  return { ...env, name };
}

export function approvalPolicy(env: EnvironmentConfig): ApprovalPolicy {
  const { approvers, allowSelfApproval, timeout, timeouts, webhook } = env.approvals;
  return { approvers, allowSelfApproval, timeoutMs: timeout, timeoutsMs: timeouts, ...(webhook ? { webhook } : {}) };
}

/** "environments.prod.aws.region: Required; plugins.0: Expected string" */
export function formatIssues(error: z.ZodError, prefix: (string | number)[] = []): string {
  return error.issues
    .map((issue) => {
      const path = [...prefix, ...issue.path].join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
