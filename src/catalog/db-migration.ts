/** Catalog entry of `db-migration` (seed 002, "Migrations Involving the Database"). */
import { z } from 'zod';
import { durationSchema } from '../duration.js';
import type { EnvironmentConfig } from '../config.js';
import { destinationProblem, findCredential } from '../credentials.js';
import { dbMigrationPlan, type DbMigrationParams, type Provisioning } from '../workflows/db-migration.js';
import { credentialName } from './database-login.js';
import { defineRunbook } from './definition.js';
import { terraformDirName, terraformDirPath, terraformDirProblem } from './terraform-dir.js';

/**
 * A name that ends up in SQL, an AWS call or a command line. Quotes,
 * semicolons, backslashes and whitespace are refused first, with their own
 * message (activities quote identifiers anyway; this keeps such names out of
 * the run altogether), then the name must match its system's rule.
 */
function safeName(pattern: RegExp, rule: string, max = 63) {
  return z.string().superRefine((value, ctx) => {
    if (/['"`;\\\s]/.test(value))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not contain quotes, semicolons, backslashes or whitespace' });
    else if (!value || value.length > max || !pattern.test(value))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${rule} (at most ${max} characters)` });
  });
}

const rdsIdentifier = safeName(
  /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]*(?<!-)$/,
  'an RDS identifier: a letter, then letters, digits and single hyphens, not ending in a hyphen',
);
const pgName = safeName(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a PostgreSQL name: a letter or _, then letters, digits and _');
const ecsName = safeName(/^[a-zA-Z0-9_-]+$/, 'an ECS name: letters, digits, hyphens and underscores', 255);
const envVariable = safeName(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name', 255);

const cidr = z.string().superRefine((value, ctx) => {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!match || match.slice(1, 5).some((octet) => Number(octet) > 255) || Number(match[5]) > 32) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'an IPv4 CIDR such as 203.0.113.7/32' });
  } else if (Number(match[5]) < 8) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: "must not open the database to (nearly) the whole internet; give the operator's or the worker's address",
    });
  }
});

const credentials = (whose: string) =>
  z
    .object({
      username: pgName.describe(`${whose}'s user name`),
      credential: credentialName.describe(
        `logical name of ${whose}'s password in the worker's config (credentials:), bound to the instances it may go to`,
      ),
    })
    .strict();

const provisioning = z.discriminatedUnion('mode', [
  z
    .object({
      mode: z.literal('aws'),
      terraformState: z
        .object({
          dir: terraformDirName,
          workspace: safeName(/^[a-zA-Z0-9_-]+$/, 'a Terraform workspace name')
            .default('default')
            .describe('its workspace'),
        })
        .strict()
        .optional()
        .describe(
          'a Terraform state to check: preflight refuses when it manages sourceInstance (the next apply would recreate an empty database there; use mode terraform)',
        ),
    })
    .strict(),
  z
    .object({
      mode: z.literal('terraform'),
      dir: terraformDirName,
      workspace: safeName(/^[a-zA-Z0-9_-]+$/, 'a Terraform workspace name')
        .default('default')
        .describe('Terraform workspace (staging, production, …)'),
      instanceAddress: safeName(/^[a-zA-Z0-9_.[\]-]+$/, 'a Terraform resource address', 255)
        .default('aws_db_instance.database')
        .describe('address of the DB instance resource'),
      passwordAddress: safeName(/^[a-zA-Z0-9_.[\]-]+$/, 'a Terraform resource address', 255)
        .default('random_string.db_password')
        .describe('address of the generated app password'),
    })
    .strict(),
]);

const params = z
  .object({
    sourceInstance: rdsIdentifier.describe('RDS instance identifier of the database to move (the run holds it exclusively)'),
    database: pgName.describe('the database inside the instance, e.g. appdb'),
    newInstance: z
      .object({
        identifier: rdsIdentifier.describe('identifier of the new instance; must not exist yet'),
        instanceClass: safeName(/^db\.[a-z0-9]+\.[a-z0-9]+$/, 'an RDS instance class such as db.t3.micro')
          .optional()
          .describe("instance class (default: the old instance's)"),
        engineVersion: safeName(/^\d+(\.\d+)*$/, 'a PostgreSQL engine version such as 15.8')
          .optional()
          .describe("engine version (default: the old instance's)"),
        allocatedStorageGb: z
          .number()
          .int()
          .min(20)
          .max(65_536)
          .optional()
          .describe("storage in GiB (default and minimum: the old instance's)"),
      })
      .strict()
      .describe('the instance to create'),
    mode: z
      .enum(['online', 'dump'])
      .optional()
      .describe(
        'online: logical replication copies while the writers write, which stop only for the catch-up after `cutover`; dump: writers stopped for pg_dump and restore. Default: online where the source can replicate (preflight says why not)',
      ),
    provisioning: provisioning
      .default({ mode: 'aws' })
      .describe(
        'how the new instance is made: {mode: aws} (RDS API) or {mode: terraform, dir, workspace, instanceAddress, passwordAddress}',
      ),
    writers: z
      .array(
        z
          .object({
            cluster: ecsName.describe('ECS cluster of the writer service'),
            service: ecsName.describe('ECS service that writes to the database'),
            hostVariable: envVariable.default('DATABASE_HOST').describe('container environment variable holding the database host'),
            portVariable: envVariable.optional().describe('container environment variable holding the database port, if any'),
          })
          .strict(),
      )
      .min(1)
      .describe('every ECS service that writes to the database: stopped during the copy, started on the new database after the cutover'),
    backup: z
      .object({
        bucket: safeName(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name').describe(
          'S3 bucket for the dump, readable by every worker',
        ),
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9._/-]*$/, 'letters, digits and . _ / -')
          .default('db-migration/')
          .transform((prefix) => (prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix))
          .describe('key prefix; each run adds <sourceInstance>/<run id>/'),
      })
      .strict(),
    credentials: z
      .object({
        app: credentials('the application').describe("the application's login: dumps the old database, owns the restored one"),
        admin: credentials("the new instance's master user").describe(
          'master user of the new instance: creates the app role and the database',
        ),
        newApp: credentials('the application on the new instance')
          .optional()
          .describe("the application's login on the new instance, if it differs (default: app)"),
        replication: credentials('the replication login')
          .optional()
          .describe('online mode: the login the new instance replicates from the old one with; needs replication rights (default: admin)'),
      })
      .strict(),
    deployPipeline: z
      .object({
        name: safeName(/^[A-Za-z0-9.@_-]+$/, 'a CodePipeline pipeline name: letters, digits and . @ _ -', 100).describe(
          'the CodePipeline pipeline that deploys the application',
        ),
        stage: safeName(/^[A-Za-z0-9.@_-]+$/, 'a CodePipeline stage name: letters, digits and . @ _ -', 100).describe(
          'its stage that touches the database (deploys, migrates): the transition into it is disabled for the run',
        ),
      })
      .strict()
      .optional()
      .describe(
        'seed 002\'s "the deployment process should also be stopped": the transition into this stage is disabled before the writers stop and enabled again however the run ends (an operator\'s own pause is left as it is)',
      ),
    temporaryAccess: z
      .object({ cidr: cidr.describe('address allowed in while the copy runs') })
      .strict()
      .optional()
      .describe(
        'open private instances for the copy (public access and a security-group rule), closed again whatever happens; unset when workers reach the database directly',
      ),
    tls: z.enum(['require', 'disable']).default('require').describe('encrypt database connections (disable only for local servers)'),
    parallelJobs: z.number().int().min(1).max(32).default(4).describe('pg_dump/pg_restore jobs (-j)'),
    instanceTimeout: durationSchema.default('60m').describe('how long creating, modifying or deleting an instance may take'),
    writersTimeout: durationSchema.default('15m').describe('how long the writers may take to stop or start'),
    copyTimeout: durationSchema.default('12h').describe('how long the backup, the restore and the verification may each take'),
    endpointMap: z
      .object({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65_535),
        database: z
          .string()
          .regex(/^([a-zA-Z0-9_-]|\{instance\}|\{database\})+$/, 'letters, digits, _ - and the placeholders {instance} and {database}'),
      })
      .strict()
      .optional()
      .describe('emulated environments only: where each RDS instance really is (one PostgreSQL server, a database per instance)'),
  })
  // A mistyped --set key must not silently fall back to a default.
  .strict();

export type DbMigrationInputs = z.input<typeof params>;
type Params = z.infer<typeof params>;

export const dbMigrationRunbook = defineRunbook({
  name: 'db-migration',
  workflowType: 'dbMigration',
  description:
    'move the application database to a new RDS instance: online (logical replication, writers stopped only for the catch-up) or dump (stop the writers, dump, restore, verify), cut over, delete the old one',
  params,
  plan: dbMigrationPlan,
  target: (p) => p.sourceInstance,
  services: (p) => p.writers.map((w) => w.service),
  summary: (p, env) =>
    `move ${p.sourceInstance}/${p.database} to ${p.newInstance.identifier} on ${env.name} (${p.provisioning.mode}): ` +
    (p.mode === 'dump'
      ? `stop ${p.writers.map((w) => w.service).join(', ')}, pg_dump -j ${p.parallelJobs} via s3://${p.backup.bucket}, restore, verify, cut over`
      : `${p.mode ?? 'online where the source can replicate, else dump'}: replicate while ${p.writers.map((w) => w.service).join(', ')} write, stop them only for the catch-up, cut over`),
  check: (p, env) => {
    if (p.newInstance.identifier === p.sourceInstance) return 'newInstance.identifier: must differ from sourceInstance';
    const bound = credentialsProblem(p, env);
    if (bound) return bound;
    const dirProblem = provisioningDirProblem(p.provisioning, env);
    if (dirProblem) return dirProblem;
    if (p.endpointMap && !env.aws.endpoint)
      return 'endpointMap: only for emulated environments (aws.endpoint set); real RDS endpoints are reached directly';
    if (env.protected) {
      if (p.endpointMap) return `endpointMap: not on ${env.name}, a protected environment; database hosts come from the RDS API`;
      if (p.tls === 'disable') return `tls: ${env.name} is protected, so database connections must be encrypted (tls: require)`;
      const prefix = p.temporaryAccess ? Number(p.temporaryAccess.cidr.split('/')[1]) : 32;
      if (prefix < env.protection.minCidrPrefix) {
        return `temporaryAccess.cidr: ${p.temporaryAccess!.cidr} is wider than ${env.name} allows (at most a /${env.protection.minCidrPrefix}); give the worker's or the operator's address`;
      }
    }
    return null;
  },
  prepare: (p, env): DbMigrationParams => ({
    aws: env.aws,
    sourceInstance: p.sourceInstance,
    database: p.database,
    ...(p.mode ? { mode: p.mode } : {}),
    newInstance: p.newInstance,
    provisioning: preparedProvisioning(p.provisioning, env),
    writers: p.writers,
    backup: p.backup,
    credentials: {
      app: { env: env.name, ...p.credentials.app },
      admin: { env: env.name, ...p.credentials.admin },
      ...(p.credentials.newApp ? { newApp: { env: env.name, ...p.credentials.newApp } } : {}),
    },
    ...(p.deployPipeline ? { deployPipeline: p.deployPipeline } : {}),
    ...(p.temporaryAccess ? { temporaryAccess: p.temporaryAccess } : {}),
    tls: p.tls,
    parallelJobs: p.parallelJobs,
    instanceTimeoutMs: p.instanceTimeout,
    writersTimeoutMs: p.writersTimeout,
    copyTimeoutMs: p.copyTimeout,
    ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}),
  }),
});

function provisioningDirProblem(provisioning: Params['provisioning'], env: EnvironmentConfig): string | null {
  if (provisioning.mode === 'terraform') return terraformDirProblem('provisioning.dir', provisioning.dir, env);
  return provisioning.terraformState ? terraformDirProblem('provisioning.terraformState.dir', provisioning.terraformState.dir, env) : null;
}

/** Directory names become the worker's paths; Terraform runs with the environment's CLI configuration (say, a provider mirror). */
function preparedProvisioning(provisioning: Params['provisioning'], env: EnvironmentConfig): Provisioning {
  if (provisioning.mode === 'terraform') {
    const cliConfig = env.terraform?.cliConfig;
    return {
      ...provisioning,
      dirName: provisioning.dir,
      dir: terraformDirPath(provisioning.dir, env),
      ...(cliConfig ? { cliConfig } : {}),
    };
  }
  const state = provisioning.terraformState;
  return { mode: 'aws', ...(state ? { terraformState: { ...state, dirName: state.dir, dir: terraformDirPath(state.dir, env) } } : {}) };
}

/**
 * Each login goes only to instances its credential is bound to: the app's to
 * the source (and to the new instance, unless newApp is given), the admin's
 * and newApp's to the new instance. Database hosts here always come from the
 * RDS API (or the emulator's mapping of it), so credentials bind to instances.
 */
function credentialsProblem(p: Params, env: EnvironmentConfig): string | null {
  const uses: [string, { credential: string }, string][] = [
    ['credentials.app', p.credentials.app, p.sourceInstance],
    [p.credentials.newApp ? 'credentials.newApp' : 'credentials.app', p.credentials.newApp ?? p.credentials.app, p.newInstance.identifier],
    ['credentials.admin', p.credentials.admin, p.newInstance.identifier],
  ];
  for (const [field, login, instance] of uses) {
    const credential = findCredential(env, login.credential, `${field}.credential`);
    if (typeof credential === 'string') return credential;
    const problem = destinationProblem(credential, login.credential, { instance, host: instance, port: 5432 }, `${field}.credential`);
    if (problem) return problem;
  }
  return null;
}
