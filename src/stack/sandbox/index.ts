/**
 * The `sandbox` environment: seeds the local stack with what each runbook
 * works on, and returns the environment's config (endpoints and the default
 * inputs of every runbook), so a newcomer can start any runbook with no parameters.
 */
import { seedBuckets } from './s3.js';
import { seedEcs } from './ecs.js';
import { EcsSimulator } from './ecs-simulator.js';
import { seedRegions, type SandboxRegions } from './regions.js';
import { seedDatabases, type SandboxDatabases } from './db.js';
import { PIPELINE_ARTIFACTS, seedDeployPipeline } from './deploy-pipeline.js';
import { seedMigrationTarget, TASK_RECORDS_BUCKET, type SandboxMigrations } from './migration-target.js';
import { DB_USER } from './regions.js';
import { seedDeploys, type SandboxDeploys } from './deploys.js';
import { TASK_RECORDS_BUCKET_ENV } from '../../activities/deps.js';
import { seedTerraform, type SandboxTerraform } from './terraform.js';

export interface SandboxOptions {
  awsEndpoint: string;
  postgresUrl: string;
  /** The CA that signed the local PostgreSQL's certificate: connections verify against it (verify-full). */
  postgresCa?: string;
  region?: string;
}

export interface Sandbox {
  /** The `sandbox` entry of the environments config. */
  environment: Record<string, unknown>;
  /** db-migration's databases: more source instances for tests, and what they need to inspect them. */
  db: SandboxDatabases;
  /** Runs ECS services to their desired counts (moto has no scheduler); tests tune its health delay and failures. */
  ecs: EcsSimulator;
  /** region-data-update's bucket and region_config database, and a way to add regions. */
  regions: SandboxRegions;
  /** ecs-migration's network, task definition and migrations, and the simulator's migration tasks. */
  migrations: SandboxMigrations;
  /**
   * Environment a worker for the sandbox needs: where the ECS simulator records
   * what moto cannot report (exit codes). `createDeps` reads it.
   */
  workerEnv: Record<string, string>;
  /** prod-tag-deploy's repository and service, each commit's digest, and a way to mark digests bad. */
  deploys: SandboxDeploys;
  /** terraform-apply's directory (undefined when no terraform binary could be found or built). */
  terraform: SandboxTerraform | undefined;
  /** Stops the simulators the sandbox runs. */
  stop(): Promise<void>;
}

export async function seedSandbox(options: SandboxOptions): Promise<Sandbox> {
  const region = options.region ?? 'us-east-1';
  const runbooks: Record<string, Record<string, unknown>> = {};
  const stops: (() => Promise<void>)[] = [];
  runbooks['rolling-restart'] = { ...(await seedEcs(options.awsEndpoint, region)) };
  const regions = await seedRegions({ awsEndpoint: options.awsEndpoint, region, postgresUrl: options.postgresUrl });
  runbooks['region-data-update'] = regions.defaults;
  const migrations = await seedMigrationTarget({
    awsEndpoint: options.awsEndpoint,
    region,
    databaseUrl: regions.regions.databaseUrl,
    databaseOwner: DB_USER,
    database: regions.defaults.database as SandboxMigrations['defaults']['database'],
  });
  runbooks['ecs-migration'] = migrations.defaults;
  const deploys = await seedDeploys({
    awsEndpoint: options.awsEndpoint,
    region,
    network: migrations.network,
    database: migrations.defaults.database,
    migrations: migrations.catalog,
    databaseUrl: regions.regions.databaseUrl,
  });
  runbooks['prod-tag-deploy'] = deploys.defaults;
  const ecs = new EcsSimulator(options.awsEndpoint, region, 'sandbox', { oneOffTasks: migrations.tasks, images: deploys.images });
  ecs.start();
  stops.push(() => ecs.stop());
  runbooks['bucket-swap'] = await seedBuckets(options.awsEndpoint, region);
  const db = await seedDatabases({ awsEndpoint: options.awsEndpoint, postgresUrl: options.postgresUrl, region });
  const deployPipeline = await seedDeployPipeline({ awsEndpoint: options.awsEndpoint, region, artifactBucket: PIPELINE_ARTIFACTS });
  runbooks['db-migration'] = { ...db.defaults, deployPipeline };
  stops.push(() => db.stop());
  const terraform = await seedTerraform({ awsEndpoint: options.awsEndpoint, region });
  if (terraform) {
    runbooks['terraform-apply'] = terraform.defaults;
    stops.push(() => terraform.stop());
  }
  return {
    environment: {
      description: 'the local stack started by `runbook dev`: anyone may approve, self-approval allowed',
      aws: { region, endpoint: options.awsEndpoint },
      approvals: { approvers: ['*'], allowSelfApproval: true, timeout: '24h' },
      credentials: { ...regions.credentials, ...db.credentials },
      databaseTls: options.postgresCa ? { mode: 'verify-full', ca: options.postgresCa } : { mode: 'require' },
      ...(terraform ? { terraform: terraform.config } : {}),
      runbooks,
    },
    db,
    ecs,
    regions: regions.regions,
    migrations,
    deploys,
    workerEnv: { [TASK_RECORDS_BUCKET_ENV]: TASK_RECORDS_BUCKET },
    terraform,
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
