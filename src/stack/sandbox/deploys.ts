/**
 * The sandbox for `prod-tag-deploy`, in moto: the ECR repository `sandbox-app`
 * with the images of three commits (the one tagged `prod`, a newer one without
 * migrations, a newer one with migrations), and the service `web` (Fargate, 4
 * tasks, in the app VPC's private subnets) whose task definition runs
 * `<repository>:prod`, serving in target group `sandbox-web`. The ECS
 * simulator follows the service's image through ECR (service-images.ts).
 */
import { createHash } from 'node:crypto';
import { CreateRepositoryCommand, ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import { CreateServiceCommand, ECSClient, RegisterTaskDefinitionCommand } from '@aws-sdk/client-ecs';
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { S3Client } from '@aws-sdk/client-s3';
import type { ProdTagDeployInputs } from '../../catalog/prod-tag-deploy.js';
import { SANDBOX_COMMITS, type AppMigrations } from './app-migrations.js';
import { SANDBOX_CLUSTER } from './ecs.js';
import { launchServiceTasks, taskAddress } from './ecs-simulator.js';
import { APP_LOG_GROUP, APP_REPOSITORY, TASK_RECORDS_BUCKET, type SandboxMigrations } from './migration-target.js';
import { ServiceImages } from './service-images.js';

export const DEPLOY_SERVICE = 'web';
const TARGET_GROUP = 'sandbox-web';
const TASKS = 4;
const PORT = 8080;
const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export interface SandboxDeploys {
  /** The sandbox's default inputs of `prod-tag-deploy`. */
  defaults: ProdTagDeployInputs;
  /** Digest of each commit's image. */
  digests: Record<string, string>;
  /** Give it to the cluster's ECS simulator; tests mark digests bad. */
  images: ServiceImages;
  targetGroup: string;
}

export async function seedDeploys(options: {
  awsEndpoint: string;
  region: string;
  network: SandboxMigrations['network'];
  database: ProdTagDeployInputs['database'];
  /** What an image that migrates at boot runs, and where (superuser URL of the app database). */
  migrations: AppMigrations;
  databaseUrl: string;
}): Promise<SandboxDeploys> {
  const config = { endpoint: options.awsEndpoint, region: options.region, credentials: MOTO_CREDENTIALS };
  const ecr = new ECRClient(config);
  const ecs = new ECSClient(config);
  const elbv2 = new ElasticLoadBalancingV2Client(config);
  const digests: Record<string, string> = {};
  const commitOf = (digest: string) => Object.entries(digests).find(([, d]) => d === digest)?.[0];
  const images = new ServiceImages(
    { ecr: new ECRClient(config), s3: new S3Client({ ...config, forcePathStyle: true }) },
    TASK_RECORDS_BUCKET,
    {
      catalog: options.migrations,
      databaseUrl: options.databaseUrl,
      commitOf,
    },
  );
  try {
    const { repository } = await ecr.send(new CreateRepositoryCommand({ repositoryName: APP_REPOSITORY }));
    for (const commit of Object.values(SANDBOX_COMMITS)) {
      const { image } = await ecr.send(
        new PutImageCommand({ repositoryName: APP_REPOSITORY, imageTag: commit, imageManifest: manifest(commit) }),
      );
      digests[commit] = image!.imageId!.imageDigest!;
    }
    await ecr.send(
      new PutImageCommand({ repositoryName: APP_REPOSITORY, imageTag: 'prod', imageManifest: manifest(SANDBOX_COMMITS.current) }),
    );

    await ecs.send(
      new RegisterTaskDefinitionCommand({
        family: DEPLOY_SERVICE,
        networkMode: 'awsvpc',
        requiresCompatibilities: ['FARGATE'],
        cpu: '256',
        memory: '512',
        containerDefinitions: [
          {
            name: 'app',
            image: `${repository!.repositoryUri}:prod`,
            cpu: 256,
            memory: 512,
            essential: true,
            portMappings: [{ containerPort: PORT }],
            logConfiguration: {
              logDriver: 'awslogs',
              options: { 'awslogs-group': APP_LOG_GROUP, 'awslogs-region': options.region, 'awslogs-stream-prefix': DEPLOY_SERVICE },
            },
          },
        ],
      }),
    );
    const { TargetGroups = [] } = await elbv2.send(
      new CreateTargetGroupCommand({
        Name: TARGET_GROUP,
        Protocol: 'HTTP',
        Port: PORT,
        VpcId: options.network.vpc,
        TargetType: 'ip',
        HealthCheckPath: '/health',
      }),
    );
    const targetGroupArn = TargetGroups[0]!.TargetGroupArn!;
    const { service } = await ecs.send(
      new CreateServiceCommand({
        cluster: SANDBOX_CLUSTER,
        serviceName: DEPLOY_SERVICE,
        taskDefinition: DEPLOY_SERVICE,
        desiredCount: TASKS,
        launchType: 'FARGATE',
        loadBalancers: [{ targetGroupArn, containerName: 'app', containerPort: PORT }],
        networkConfiguration: {
          awsvpcConfiguration: {
            subnets: options.network.privateSubnets,
            securityGroups: [options.network.securityGroup],
            assignPublicIp: 'DISABLED',
          },
        },
      }),
    );
    // The steady state before anyone deploys: four tasks of the prod image, serving.
    const rollout = (await images.rolloutOf(ecs, service!))!;
    const tasks = await launchServiceTasks(ecs, SANDBOX_CLUSTER, service!, TASKS, 'healthy', rollout.digest);
    for (const task of tasks) await images.record(task.taskArn!, rollout);
    await elbv2.send(
      new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: tasks.map((t) => ({ Id: taskAddress(t)!, Port: PORT })) }),
    );
    return {
      defaults: {
        cluster: SANDBOX_CLUSTER,
        service: DEPLOY_SERVICE,
        repository: APP_REPOSITORY,
        commit: SANDBOX_COMMITS.plain,
        database: options.database,
      },
      digests,
      images,
      targetGroup: TARGET_GROUP,
    };
  } finally {
    for (const client of [ecr, ecs, elbv2]) client.destroy();
  }
}

/** A distinct, well-formed image manifest per commit (its digest is the image's identity). */
function manifest(commit: string): string {
  const sha = (what: string) => `sha256:${createHash('sha256').update(`${commit}/${what}`).digest('hex')}`;
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 1469, digest: sha('config') },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 31_357_624, digest: sha('layer') }],
  });
}
