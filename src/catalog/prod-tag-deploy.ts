/** Catalog entry of `prod-tag-deploy` (seed 004). */
import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { prodTagDeployPlan, type ProdTagDeployParams } from '../workflows/prod-tag-deploy.js';
import { databaseLoginProblem, databaseLoginSchema, toLogin } from './database-login.js';
import { defineRunbook } from './definition.js';

const imageTag = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'an image tag (letters, digits, _ . -)');

const params = z
  .object({
    mode: z.enum(['deploy', 'rollback']).default('deploy').describe('deploy a commit, or roll back to an older one'),
    cluster: z.string().min(1).describe('ECS cluster of the service'),
    service: z.string().min(1).describe('ECS service that runs the prod tag'),
    container: z.string().min(1).default('app').describe('container whose image is <repository>:<prodTag>'),
    repository: z.string().min(1).describe('ECR repository CD pushes to'),
    commit: imageTag.describe('the commit (image tag) to make prod'),
    prodTag: imageTag.default('prod').describe('the tag ECS runs'),
    toleratedFailures: z.number().int().min(0).default(0).describe('new tasks that may fail before the canary stops'),
    healthTimeout: durationSchema.default('15m').describe('how long the new tasks may take to serve'),
    database: databaseLoginSchema.describe('the database holding schema_migration'),
    fixesCommit: imageTag.optional().describe('during a deploy freeze: the bad commit this deploy fixes'),
    rollbackOverrideReason: z
      .string()
      .min(10, 'write why (10 characters at least)')
      .optional()
      .describe('roll back although no run recorded the schema when the target was prod; recorded with the run'),
  })
  .strict();

export const prodTagDeployRunbook = defineRunbook({
  name: 'prod-tag-deploy',
  workflowType: 'prodTagDeploy',
  description:
    "move the ECR prod tag to a commit's image and canary-replace the service's tasks; rollback refused once a migration ran since, and freezes deploys",
  params,
  plan: prodTagDeployPlan,
  target: (p) => p.service,
  summary: (p, env) => `${p.mode} ${p.service} on ${env.name} to ${p.repository}:${p.commit} (moves :${p.prodTag}, one task at a time)`,
  check: (p, env) => {
    const login = databaseLoginProblem(p.database, env);
    if (login) return login;
    if (p.mode === 'deploy' && p.rollbackOverrideReason) return 'rollbackOverrideReason: only for mode=rollback';
    if (p.mode === 'rollback' && p.fixesCommit) return 'fixesCommit: only for mode=deploy';
    return null;
  },
  prepare: (p, env): ProdTagDeployParams => ({
    aws: env.aws,
    mode: p.mode,
    cluster: p.cluster,
    service: p.service,
    container: p.container,
    repository: p.repository,
    commit: p.commit,
    prodTag: p.prodTag,
    toleratedFailures: p.toleratedFailures,
    healthTimeoutMs: p.healthTimeout,
    database: toLogin(p.database, env),
    protectedEnv: env.protected,
    ...(p.fixesCommit ? { fixesCommit: p.fixesCommit } : {}),
    ...(p.rollbackOverrideReason ? { rollbackOverrideReason: p.rollbackOverrideReason } : {}),
  }),
});

export type ProdTagDeployInputs = z.input<typeof params>;
