/** Catalog entry of `region-data-update` (seed 003, "Updating Region Data"). */
import { z } from 'zod';
import { formatIssues, type EnvironmentConfig } from '../config.js';
import { s3UriSchema } from '../s3-uri.js';
import { regionDataUpdatePlan, type RegionDataUpdateParams } from '../workflows/region-data-update.js';
import { databaseLoginProblem, databaseLoginSchema, toLogin } from './database-login.js';
import { defineRunbook } from './definition.js';
import { InputError } from './errors.js';
import { rollingRestartRunbook } from './rolling-restart.js';

const region = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and -')
      .describe('region id as in region_config.id'),
    newDataUri: s3UriSchema.describe('s3:// folder holding the new TopoJSON data'),
    new: z.boolean().default(false).describe('a region not yet in region_config'),
  })
  .strict();

const params = z
  .object({
    regions: z.array(region).min(1).describe('the regions to update, each with its new data'),
    mode: z
      .enum(['s3-overwrite', 'db-uri'])
      .default('s3-overwrite')
      .describe('overwrite the data on S3 (default), or point region_config.s3_uri at the new data (staging only)'),
    exact: z
      .boolean()
      .default(false)
      .describe("also delete files in a region's folder that the new data lacks (default: leave them, as the seed's cp --recursive does)"),
    stagingEnv: z
      .string()
      .min(1, 'must name an environment')
      .optional()
      .describe('environment where the same regions must have been updated first (production: staging)'),
    requireStagingRun: z.boolean().default(true).describe('refuse unless a succeeded run on stagingEnv covers these regions'),
    stagingOverrideReason: z
      .string()
      .min(10, 'write why the staging run is skipped (10 characters at least)')
      .optional()
      .describe('why the staging rule is waived; recorded with the run'),
    database: databaseLoginSchema.describe('the database holding region_config'),
    restart: z
      .record(z.unknown())
      .default({})
      .describe("inputs of the rolling restart that reloads the data (defaults: this environment's rolling-restart defaults)"),
  })
  .strict();

type Inputs = z.infer<typeof params>;

export const regionDataUpdateRunbook = defineRunbook({
  name: 'region-data-update',
  workflowType: 'regionDataUpdate',
  description: 'replace region data (backed up first), restart the services, QA, then bump region_config.version so caches refresh',
  params,
  plan: regionDataUpdatePlan,
  target: (p) => [...p.regions.map((r) => r.id)].sort().join('+'),
  summary: (p, env) =>
    `update region data of ${p.regions.map((r) => r.id).join(', ')} on ${env.name} (${p.mode}), restart, QA, bump versions`,
  check: (p, env) => {
    if (p.mode === 'db-uri' && env.protected) {
      return `mode: db-uri changes region_config.s3_uri, which fails API calls and health checks until the data loads (an outage); ${env.name} is protected, so only s3-overwrite is allowed`;
    }
    if (env.protected && !p.stagingEnv)
      return `stagingEnv: required on ${env.name}, a protected environment (where the same regions must have been updated first)`;
    if (env.protected && p.stagingEnv === env.name) return `stagingEnv: must be another environment than ${env.name}`;
    const login = databaseLoginProblem(p.database, env);
    if (login) return login;
    if (!p.requireStagingRun && !p.stagingOverrideReason)
      return 'stagingOverrideReason: required when requireStagingRun is false (it is recorded with the run)';
    const duplicate = p.regions.find((r, i) => p.regions.findIndex((other) => other.id === r.id) !== i);
    if (duplicate) return `regions: ${duplicate.id} is listed twice`;
    return null;
  },
  prepare: (p, env): RegionDataUpdateParams => ({
    aws: env.aws,
    regions: p.regions.map((r) => ({ id: r.id, newDataUri: r.newDataUri, isNew: r.new })),
    mode: p.mode,
    exact: p.exact,
    ...(p.stagingEnv ? { stagingEnv: p.stagingEnv } : {}),
    requireStagingRun: p.requireStagingRun,
    ...(p.stagingOverrideReason ? { stagingOverrideReason: p.stagingOverrideReason } : {}),
    database: toLogin(p.database, env),
    restart: restartParams(p, env),
  }),
});

/**
 * The restart's inputs are the rolling-restart runbook's, with this
 * environment's defaults, validated the same way here; the child run resolves
 * them again on the worker under its own rules.
 */
function restartParams(p: Inputs, env: EnvironmentConfig): RegionDataUpdateParams['restart'] {
  const inputs = { ...structuredClone(env.runbooks['rolling-restart'] ?? {}), ...p.restart };
  const parsed = rollingRestartRunbook.params.safeParse(inputs);
  if (!parsed.success) throw new InputError(`invalid input for region-data-update: ${formatIssues(parsed.error, ['restart'])}`);
  return { service: parsed.data.service, inputs };
}
