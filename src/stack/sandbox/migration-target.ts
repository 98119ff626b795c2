/**
 * The sandbox for `ecs-migration`, in moto: the app's VPC (two private
 * subnets named `PrivateSubnet`, one public subnet routed to an internet
 * gateway), its security group, a Fargate-compatible revision of the `app`
 * task definition whose `app` container logs with awslogs to an existing log
 * group, the bucket where the ECS simulator records exit codes, and the
 * `schema_migration` table in the app's database (`districtbuilder`) with the
 * migrations of the image running now. Expects a fresh moto and database.
 */
import { CloudWatchLogsClient, CreateLogGroupCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  EC2Client,
  ModifySubnetAttributeCommand,
  ModifyVpcAttributeCommand,
} from '@aws-sdk/client-ec2';
import { ECSClient, RegisterTaskDefinitionCommand } from '@aws-sdk/client-ecs';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { EcsMigrationInputs } from '../../catalog/ecs-migration.js';
import { SANDBOX_COMMITS, sandboxAppMigrations, seedSchemaMigration, type AppMigrations } from './app-migrations.js';
import { SANDBOX_CLUSTER } from './ecs.js';
import { OneOffTasks } from './one-off-tasks.js';

export const TASK_RECORDS_BUCKET = 'sandbox-ecs-simulator';
export const APP_FAMILY = 'app';
export const APP_LOG_GROUP = 'logSandboxApp';
export const APP_REPOSITORY = 'sandbox-app';

const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export interface SandboxMigrations {
  /** The sandbox's default inputs of `ecs-migration`. */
  defaults: EcsMigrationInputs;
  /** Each image's migrations: tests add their own "next commit" migrations. */
  catalog: AppMigrations;
  /** Runs the migration tasks (give it to the cluster's ECS simulator); tests set how long they run or make them fail to start. */
  tasks: OneOffTasks;
  /** The image tag the migration task definition runs. */
  imageTag: string;
  network: { vpc: string; privateSubnets: string[]; publicSubnet: string; securityGroup: string };
}

export async function seedMigrationTarget(options: {
  awsEndpoint: string;
  region: string;
  /** Superuser URL of the app's database, and its owner role. */
  databaseUrl: string;
  databaseOwner: string;
  /** The app database as `ecs-migration`'s `database` input (secret reference, no password). */
  database: EcsMigrationInputs['database'];
}): Promise<SandboxMigrations> {
  const config = { endpoint: options.awsEndpoint, region: options.region, credentials: MOTO_CREDENTIALS };
  const ec2 = new EC2Client(config);
  const ecs = new ECSClient(config);
  const logs = new CloudWatchLogsClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  try {
    const network = await createNetwork(ec2);
    await logs.send(new CreateLogGroupCommand({ logGroupName: APP_LOG_GROUP }));
    const imageTag = SANDBOX_COMMITS.migrating;
    await ecs.send(
      new RegisterTaskDefinitionCommand({
        family: APP_FAMILY,
        networkMode: 'awsvpc',
        requiresCompatibilities: ['EC2', 'FARGATE'],
        cpu: '256',
        memory: '512',
        containerDefinitions: [
          {
            name: 'app',
            image: `${APP_REPOSITORY}:${imageTag}`,
            cpu: 256,
            memory: 512,
            essential: true,
            portMappings: [{ containerPort: 8080 }],
            logConfiguration: {
              logDriver: 'awslogs',
              options: { 'awslogs-group': APP_LOG_GROUP, 'awslogs-region': options.region, 'awslogs-stream-prefix': 'app' },
            },
          },
        ],
      }),
    );
    await s3.send(new CreateBucketCommand({ Bucket: TASK_RECORDS_BUCKET }));
    const catalog = sandboxAppMigrations();
    await seedSchemaMigration(options.databaseUrl, options.databaseOwner, catalog);
    return {
      defaults: {
        cluster: SANDBOX_CLUSTER,
        taskDefinition: APP_FAMILY,
        vpc: network.vpc,
        securityGroup: network.securityGroup,
        database: options.database,
      },
      catalog,
      // Its clients live as long as the simulator that runs it.
      tasks: new OneOffTasks({
        logs: new CloudWatchLogsClient(config),
        s3: new S3Client({ ...config, forcePathStyle: true }),
        recordsBucket: TASK_RECORDS_BUCKET,
        migrations: catalog,
        databaseUrl: options.databaseUrl,
      }),
      imageTag,
      network,
    };
  } finally {
    for (const client of [ec2, ecs, logs, s3]) client.destroy();
  }
}

/** A VPC as the app's Terraform makes one: private subnets for tasks, a public one for load balancers. */
async function createNetwork(ec2: EC2Client): Promise<SandboxMigrations['network']> {
  const named = (type: 'vpc' | 'subnet' | 'security-group' | 'route-table' | 'internet-gateway', name: string) => [
    { ResourceType: type, Tags: [{ Key: 'Name', Value: name }] },
  ];
  const { Vpc } = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.20.0.0/16', TagSpecifications: named('vpc', 'sandbox-app') }));
  const vpc = Vpc!.VpcId!;
  // As Fargate needs (and moto too: it names a task's network interface only in a VPC with DNS hostnames).
  await ec2.send(new ModifyVpcAttributeCommand({ VpcId: vpc, EnableDnsHostnames: { Value: true } }));
  const subnet = async (cidr: string, name: string, zone: string) =>
    (
      await ec2.send(
        new CreateSubnetCommand({ VpcId: vpc, CidrBlock: cidr, AvailabilityZone: zone, TagSpecifications: named('subnet', name) }),
      )
    ).Subnet!.SubnetId!;
  const privateSubnets = [
    await subnet('10.20.1.0/24', 'PrivateSubnet', 'us-east-1a'),
    await subnet('10.20.2.0/24', 'PrivateSubnet', 'us-east-1b'),
  ];
  const publicSubnet = await subnet('10.20.101.0/24', 'PublicSubnet', 'us-east-1a');
  await ec2.send(new ModifySubnetAttributeCommand({ SubnetId: publicSubnet, MapPublicIpOnLaunch: { Value: true } }));
  const { InternetGateway } = await ec2.send(
    new CreateInternetGatewayCommand({ TagSpecifications: named('internet-gateway', 'sandbox-app') }),
  );
  await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: InternetGateway!.InternetGatewayId!, VpcId: vpc }));
  const { RouteTable } = await ec2.send(
    new CreateRouteTableCommand({ VpcId: vpc, TagSpecifications: named('route-table', 'sandbox-app-public') }),
  );
  await ec2.send(
    new CreateRouteCommand({
      RouteTableId: RouteTable!.RouteTableId!,
      DestinationCidrBlock: '0.0.0.0/0',
      GatewayId: InternetGateway!.InternetGatewayId!,
    }),
  );
  await ec2.send(new AssociateRouteTableCommand({ RouteTableId: RouteTable!.RouteTableId!, SubnetId: publicSubnet }));
  const { GroupId } = await ec2.send(
    new CreateSecurityGroupCommand({ GroupName: 'sandbox-app', Description: 'the app tasks', VpcId: vpc }),
  );
  return { vpc, privateSubnets, publicSubnet, securityGroup: GroupId! };
}
