/**
 * The sandbox's deploy pipeline: the CodePipeline that would ship the
 * application (source, build, then a deploy stage that runs its migrations
 * and updates the service). db-migration pauses the transition into the
 * deploy stage for its run (seed 002: "the deployment process for the API
 * should also be stopped because it touches the database"). moto runs no
 * executions, so this pipeline never deploys anything; its transitions are
 * what the runbook changes (src/stack/moto-extensions/codepipeline_transitions.py).
 */
import { CodePipelineClient, CreatePipelineCommand, type ActionCategory, type StageDeclaration } from '@aws-sdk/client-codepipeline';
import { CreateRoleCommand, IAMClient } from '@aws-sdk/client-iam';

export const DEPLOY_PIPELINE = 'sandbox-app-deploy';
/** The stage that touches the database. */
export const DEPLOY_STAGE = 'Deploy';
/** Where its artifacts would go (CodePipeline requires a store; moto runs nothing, so none is ever written). */
export const PIPELINE_ARTIFACTS = 'sandbox-pipeline-artifacts';

const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export interface DeployPipelineOptions {
  awsEndpoint: string;
  region: string;
  /** Pipeline name (default the sandbox's); tests make their own. */
  name?: string;
  /** The bucket the pipeline's artifacts would go to. */
  artifactBucket: string;
}

/** Creates the pipeline (and, once, the role CodePipeline assumes); returns what db-migration's `deployPipeline` names. */
export async function seedDeployPipeline(options: DeployPipelineOptions): Promise<{ name: string; stage: string }> {
  const config = { endpoint: options.awsEndpoint, region: options.region, credentials: MOTO_CREDENTIALS };
  const iam = new IAMClient(config);
  const codePipeline = new CodePipelineClient(config);
  const name = options.name ?? DEPLOY_PIPELINE;
  try {
    const roleArn = await pipelineRole(iam, `${name}-role`);
    await codePipeline.send(
      new CreatePipelineCommand({
        pipeline: {
          name,
          roleArn,
          artifactStore: { type: 'S3', location: options.artifactBucket },
          stages: [
            action('Source', { category: 'Source', provider: 'S3' }, [], ['source'], {
              S3Bucket: options.artifactBucket,
              S3ObjectKey: 'app/source.zip',
            }),
            action('Build', { category: 'Build', provider: 'CodeBuild' }, ['source'], ['image'], { ProjectName: 'sandbox-app' }),
            action(DEPLOY_STAGE, { category: 'Deploy', provider: 'ECS' }, ['image'], [], {
              ClusterName: 'db-writers',
              ServiceName: 'app-writer',
            }),
          ],
        },
      }),
    );
    return { name, stage: DEPLOY_STAGE };
  } finally {
    iam.destroy();
    codePipeline.destroy();
  }
}

async function pipelineRole(iam: IAMClient, roleName: string): Promise<string> {
  const { Role } = await iam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'codepipeline.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      }),
    }),
  );
  return Role!.Arn!;
}

/** A stage of one AWS action, reading and writing the named artifacts. */
function action(
  stage: string,
  type: { category: ActionCategory; provider: string },
  input: string[],
  output: string[],
  configuration: Record<string, string>,
): StageDeclaration {
  return {
    name: stage,
    actions: [
      {
        name: type.provider,
        actionTypeId: { ...type, owner: 'AWS', version: '1' },
        configuration,
        inputArtifacts: input.map((name) => ({ name })),
        outputArtifacts: output.map((name) => ({ name })),
      },
    ],
  };
}
