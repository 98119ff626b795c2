/**
 * Every activity the runbook worker registers, built from the clients it is
 * given so tests can hand in their own (pointed at the local stack).
 */
import type { AwsClientFactory } from './aws.js';
import { createAutoScalingActivities } from './autoscaling.js';
import { createCodePipelineActivities } from './codepipeline.js';
import { createDbMigrationActivities } from './db-migration.js';
import { createEcsActivities } from './ecs.js';
import { createCanaryActivities } from './canary.js';
import { createDeployRunsActivities } from './deploy-runs.js';
import { createEcrActivities } from './ecr.js';
import { createElbActivities } from './elb.js';
import { createMigrationRunsActivities } from './migration-runs.js';
import { createMigrationTaskActivities } from './migration-task.js';
import { createNotifyActivities } from './notify.js';
import { createRegionConfigActivities } from './region-config.js';
import { createRegionDataActivities } from './region-data.js';
import { createResolveActivities, type WorkerConfigDeps } from './resolve.js';
import { createSignatureActivities } from './signatures.js';
import { createRunsActivities, type TemporalDeps } from './runs.js';
import { createS3Activities } from './s3.js';
import { createSchemaMigrationActivities } from './schema-migrations.js';
import type { TaskFactsReader } from './task-facts.js';
import type { LogsClientFactory } from './cloudwatch-logs.js';
import { createTaskCapacityActivities } from './task-capacity.js';
import { createTaskHealthActivities } from './task-health.js';
import { createSecretResolver } from './secrets.js';
import { createTerraformActivities } from './terraform.js';

export interface ActivityDeps extends TemporalDeps, WorkerConfigDeps {
  /** AWS clients per connection; unset, the SDK's default credential chain. */
  aws?: AwsClientFactory;
  /** CloudWatch Logs clients per connection; unset, the SDK's default credential chain. */
  logs?: LogsClientFactory;
  /** Exit codes and image digests of tasks; unset, ECS's DescribeTasks (see task-facts.ts). */
  taskFacts?: TaskFactsReader;
}

export function createActivities(deps: ActivityDeps = {}) {
  return merge(
    createResolveActivities(deps),
    createSignatureActivities(deps),
    createNotifyActivities(deps),
    createAutoScalingActivities(deps),
    createEcsActivities(deps),
    createElbActivities(deps),
    createTaskHealthActivities(deps),
    createTaskCapacityActivities(deps),
    createS3Activities(deps),
    createTerraformActivities({ ...deps, secrets: createSecretResolver() }),
    createDbMigrationActivities(deps),
    createRegionDataActivities(deps),
    createRegionConfigActivities(deps),
    createRunsActivities(deps),
    createMigrationTaskActivities(deps),
    createMigrationRunsActivities(deps),
    createSchemaMigrationActivities(deps),
    createEcrActivities(),
    createCanaryActivities(deps),
    createDeployRunsActivities(deps),
    createCodePipelineActivities(deps),
  );
}

/** Activity names are one namespace for the whole worker: a second module defining a name would silently win. */
export function merge<T extends object[]>(...modules: T): UnionToIntersection<T[number]> {
  const merged: Record<string, unknown> = {};
  for (const module of modules) {
    for (const [name, fn] of Object.entries(module)) {
      if (name in merged) throw new Error(`two activity modules define '${name}'; activity names must be unique across runbooks`);
      merged[name] = fn;
    }
  }
  return merged as UnionToIntersection<T[number]>;
}

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

export type Activities = ReturnType<typeof createActivities>;
