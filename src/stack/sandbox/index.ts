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
import { seedTerraform, type SandboxTerraform } from './terraform.js';

export interface SandboxOptions {
  awsEndpoint: string;
  postgresUrl: string;
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
  const ecs = new EcsSimulator(options.awsEndpoint, region, 'sandbox');
  ecs.start();
  stops.push(() => ecs.stop());
  const regions = await seedRegions({ awsEndpoint: options.awsEndpoint, region, postgresUrl: options.postgresUrl });
  runbooks['region-data-update'] = regions.defaults;
  runbooks['bucket-swap'] = await seedBuckets(options.awsEndpoint, region);
  const db = await seedDatabases({ awsEndpoint: options.awsEndpoint, postgresUrl: options.postgresUrl, region });
  runbooks['db-migration'] = db.defaults;
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
      ...(terraform ? { terraform: terraform.config } : {}),
      runbooks,
    },
    db,
    ecs,
    regions: regions.regions,
    terraform,
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
