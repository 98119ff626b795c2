/**
 * The sandbox's ECS service for `rolling-restart`, in moto: cluster `sandbox`
 * on an auto scaling group (min 1, max 4, desired 2) whose instances are
 * registered as container instances, a target group of IP targets in the
 * default VPC, and the service `app` (awsvpc, EC2 launch type) with three
 * tasks already running and healthy. Expects a fresh moto.
 */
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  CreateLaunchConfigurationCommand,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeImagesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  ECSClient,
  RegisterContainerInstanceCommand,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { RollingRestartInputs } from '../../catalog/rolling-restart.js';
import { launchServiceTasks, taskAddress } from './ecs-simulator.js';

/** The sandbox's default inputs of `rolling-restart`: which service it restarts there. */
export type RollingRestartDefaults = Required<Pick<RollingRestartInputs, 'cluster' | 'service' | 'autoScalingGroup' | 'targetGroup'>>;

export const SANDBOX_CLUSTER = 'sandbox';
const SERVICE = 'app';
const AUTO_SCALING_GROUP = 'sandbox-app';
const TARGET_GROUP = 'sandbox-app';
const CONTAINER_PORT = 8080;
const INITIAL_TASKS = 3;

const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export async function seedEcs(endpoint: string, region: string): Promise<RollingRestartDefaults> {
  const config = { endpoint, region, credentials: MOTO_CREDENTIALS };
  const ecs = new ECSClient(config);
  const autoScaling = new AutoScalingClient(config);
  const elbv2 = new ElasticLoadBalancingV2Client(config);
  const ec2 = new EC2Client(config);
  try {
    await keepTasksRunning(endpoint);
    const network = await defaultNetwork(ec2);

    const instanceIds = await createAutoScalingGroup(autoScaling, await anyImageId(ec2), network.subnetIds);
    await ecs.send(new CreateClusterCommand({ clusterName: SANDBOX_CLUSTER }));
    // EC2 launch type: moto places tasks only on registered container instances, as ECS does.
    for (const instanceId of instanceIds) {
      await ecs.send(
        new RegisterContainerInstanceCommand({ cluster: SANDBOX_CLUSTER, instanceIdentityDocument: JSON.stringify({ instanceId }) }),
      );
    }
    await ecs.send(
      new RegisterTaskDefinitionCommand({
        family: SERVICE,
        networkMode: 'awsvpc',
        requiresCompatibilities: ['EC2'],
        containerDefinitions: [
          { name: SERVICE, image: 'sandbox/app:latest', cpu: 256, memory: 256, portMappings: [{ containerPort: CONTAINER_PORT }] },
        ],
      }),
    );
    const { TargetGroups = [] } = await elbv2.send(
      new CreateTargetGroupCommand({
        Name: TARGET_GROUP,
        Protocol: 'HTTP',
        Port: CONTAINER_PORT,
        VpcId: network.vpcId,
        TargetType: 'ip',
        HealthCheckPath: '/health',
      }),
    );
    const targetGroupArn = TargetGroups[0]!.TargetGroupArn!;
    const { service } = await ecs.send(
      new CreateServiceCommand({
        cluster: SANDBOX_CLUSTER,
        serviceName: SERVICE,
        taskDefinition: SERVICE,
        desiredCount: INITIAL_TASKS,
        launchType: 'EC2',
        loadBalancers: [{ targetGroupArn, containerName: SERVICE, containerPort: CONTAINER_PORT }],
        networkConfiguration: {
          awsvpcConfiguration: { subnets: network.subnetIds.slice(0, 2), securityGroups: [network.securityGroupId] },
        },
      }),
    );

    // The service's steady state before anyone restarts it: its tasks run and serve.
    const tasks = await launchServiceTasks(ecs, SANDBOX_CLUSTER, service!, INITIAL_TASKS, 'healthy');
    await elbv2.send(
      new RegisterTargetsCommand({
        TargetGroupArn: targetGroupArn,
        Targets: tasks.map((t) => ({ Id: taskAddress(t)!, Port: CONTAINER_PORT })),
      }),
    );

    return { cluster: SANDBOX_CLUSTER, service: SERVICE, autoScalingGroup: AUTO_SCALING_GROUP, targetGroup: TARGET_GROUP };
  } finally {
    for (const client of [ecs, autoScaling, elbv2, ec2]) client.destroy();
  }
}

/**
 * moto moves a task one state towards STOPPED each time it is described
 * (tasks "drift" to STOPPED); with manual progression and no ticks a task
 * stays RUNNING until StopTask, as in ECS. The setting is global to the moto
 * server and survives its reset.
 */
async function keepTasksRunning(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/state-manager/set-transition`, {
    method: 'POST',
    body: JSON.stringify({ model_name: 'ecs::task', transition: { progression: 'manual', times: Number.MAX_SAFE_INTEGER } }),
  });
  if (!response.ok) throw new Error(`moto refused the ECS task state transition: HTTP ${response.status} ${await response.text()}`);
}

async function createAutoScalingGroup(autoScaling: AutoScalingClient, imageId: string, subnetIds: string[]): Promise<string[]> {
  await autoScaling.send(
    new CreateLaunchConfigurationCommand({ LaunchConfigurationName: AUTO_SCALING_GROUP, ImageId: imageId, InstanceType: 't3.medium' }),
  );
  await autoScaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: AUTO_SCALING_GROUP,
      LaunchConfigurationName: AUTO_SCALING_GROUP,
      MinSize: 1,
      MaxSize: 4,
      DesiredCapacity: 2,
      VPCZoneIdentifier: subnetIds.join(','),
    }),
  );
  const { AutoScalingGroups = [] } = await autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [AUTO_SCALING_GROUP] }),
  );
  return (AutoScalingGroups[0]?.Instances ?? []).flatMap((i) => (i.InstanceId ? [i.InstanceId] : []));
}

/** The default VPC's network, where the service's tasks and target group live. */
export async function defaultNetwork(ec2: EC2Client): Promise<{ vpcId: string; subnetIds: string[]; securityGroupId: string }> {
  const { Vpcs = [] } = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
  const vpcId = Vpcs[0]?.VpcId;
  if (!vpcId) throw new Error('moto has no default VPC');
  const inVpc = { Name: 'vpc-id', Values: [vpcId] };
  const { Subnets = [] } = await ec2.send(new DescribeSubnetsCommand({ Filters: [inVpc] }));
  const { SecurityGroups = [] } = await ec2.send(
    new DescribeSecurityGroupsCommand({ Filters: [inVpc, { Name: 'group-name', Values: ['default'] }] }),
  );
  const subnetIds = Subnets.flatMap((s) => (s.SubnetId ? [s.SubnetId] : []));
  const securityGroupId = SecurityGroups[0]?.GroupId;
  if (!subnetIds.length || !securityGroupId) throw new Error(`moto's default VPC ${vpcId} lacks subnets or a default security group`);
  return { vpcId, subnetIds, securityGroupId };
}

/** Any AMI moto knows: the launch configuration needs one, nothing ever boots it. */
async function anyImageId(ec2: EC2Client): Promise<string> {
  const { Images = [] } = await ec2.send(new DescribeImagesCommand({}));
  const imageId = Images[0]?.ImageId;
  if (!imageId) throw new Error('moto offers no AMI');
  return imageId;
}
