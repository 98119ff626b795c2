/** Catalog entry of `ecs-migration` (seed 003, "Migrations"). */
import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { ecsMigrationPlan, type EcsMigrationParams } from '../workflows/ecs-migration.js';
import { databaseLoginProblem, databaseLoginSchema, toLogin } from './database-login.js';
import { defineRunbook } from './definition.js';

const params = z
  .object({
    cluster: z.string().min(1).describe('ECS cluster the migration task runs in (seed: ecsStagingCluster / ecsProductionCluster)'),
    taskDefinition: z
      .string()
      .regex(
        /^[A-Za-z0-9_-]+$/,
        'a task definition family (letters, digits, _ and -), not a revision: preflight pins the newest ACTIVE one',
      )
      .describe("the app's task definition family (seed: StagingApp / ProductionApp)"),
    container: z.string().min(1).default('app').describe('container whose command is overridden'),
    command: z
      .array(z.string().min(1))
      .min(1)
      .default(['run', 'migration:run'])
      .describe('the migration command (seed: run,migration:run)'),
    vpc: z
      .string()
      .regex(/^vpc-[0-9a-f]+$/, 'a VPC ID (vpc-…)')
      .describe('the cluster VPC'),
    subnetName: z
      .string()
      .min(1)
      .default('PrivateSubnet')
      .describe('Name tag of the private subnets to run in (checked private, not trusted)'),
    securityGroup: z
      .string()
      .regex(/^sg-[0-9a-f]+$/, 'a security group ID (sg-…)')
      .describe('the app security group'),
    expectedImageTag: z.string().min(1).optional().describe("refuse unless the pinned revision's image has this tag"),
    database: databaseLoginSchema.describe('the database holding schema_migration'),
    stagingEnv: z.string().optional().describe('environment where the same image must have migrated first (production: staging)'),
    requireStagingRun: z.boolean().default(true).describe('refuse unless a succeeded ecs-migration on stagingEnv ran the same image tag'),
    stagingOverrideReason: z
      .string()
      .min(10, 'write why the staging rule is waived (10 characters at least)')
      .optional()
      .describe('why the staging rule is waived; recorded with the run'),
    timeout: durationSchema
      .default('30m')
      .describe('how long the migration may run before the run stops waiting (the task is never stopped)'),
  })
  .strict();

export const ecsMigrationRunbook = defineRunbook({
  name: 'ecs-migration',
  workflowType: 'ecsMigration',
  description:
    "run the app's migration command as a one-off Fargate task on the pinned task definition, follow its log, succeed only on exit code 0",
  params,
  plan: ecsMigrationPlan,
  target: (p) => p.taskDefinition,
  summary: (p, env) =>
    `migrate ${p.taskDefinition} on ${env.name}: \`${p.command.join(' ')}\` in ${p.cluster}, following its CloudWatch log`,
  check: (p, env) => {
    const login = databaseLoginProblem(p.database, env);
    if (login) return login;
    if (!p.requireStagingRun && !p.stagingOverrideReason)
      return 'stagingOverrideReason: required when requireStagingRun is false (it is recorded with the run)';
    if (env.protected && p.requireStagingRun && !p.stagingEnv) {
      return `stagingEnv: ${env.name} is protected, so a migration must have run on staging first; name it (or set requireStagingRun=false with a stagingOverrideReason)`;
    }
    return null;
  },
  prepare: (p, env): EcsMigrationParams => ({
    aws: env.aws,
    cluster: p.cluster,
    taskDefinition: p.taskDefinition,
    container: p.container,
    command: p.command,
    vpc: p.vpc,
    subnetName: p.subnetName,
    securityGroup: p.securityGroup,
    ...(p.expectedImageTag ? { expectedImageTag: p.expectedImageTag } : {}),
    database: toLogin(p.database, env),
    protectedEnv: env.protected,
    ...(p.stagingEnv ? { stagingEnv: p.stagingEnv } : {}),
    requireStagingRun: p.requireStagingRun,
    ...(p.stagingOverrideReason ? { stagingOverrideReason: p.stagingOverrideReason } : {}),
    timeoutMs: p.timeout,
  }),
});

export type EcsMigrationInputs = z.input<typeof params>;
