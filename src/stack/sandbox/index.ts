/**
 * The `sandbox` environment: seeds the local stack with what each runbook
 * works on, and returns the environment's config (endpoints and the default
 * inputs of every runbook), so a newcomer can start any runbook with no parameters.
 */
import { seedEcs } from './ecs.js';
import { EcsSimulator } from './ecs-simulator.js';

export interface SandboxOptions {
  awsEndpoint: string;
  postgresUrl: string;
  region?: string;
}

export interface Sandbox {
  /** The `sandbox` entry of the environments config. */
  environment: Record<string, unknown>;
  /** Runs ECS services to their desired counts (moto has no scheduler); tests tune its health delay and failures. */
  ecs: EcsSimulator;
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
  return {
    environment: {
      description: 'the local stack started by `runbook dev`: anyone may approve, self-approval allowed',
      aws: { region, endpoint: options.awsEndpoint },
      approvals: { approvers: ['*'], allowSelfApproval: true, timeout: '24h' },
      runbooks,
    },
    ecs,
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
