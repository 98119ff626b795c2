/**
 * How many more tasks of a service the cluster can place once its auto
 * scaling group runs at its maximum: the seed raises the group, then the task
 * count "to match", and ECS places a task only where its CPU and memory fit.
 * Read before anything changes, so a restart that cannot fit is refused
 * instead of waiting out its health timeout.
 */
import {
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
  type AutoScalingClient,
  type AutoScalingGroup,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeInstanceTypesCommand,
  DescribeLaunchTemplateVersionsCommand,
  type EC2Client,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import {
  DescribeContainerInstancesCommand,
  DescribeTaskDefinitionCommand,
  ListContainerInstancesCommand,
  type ECSClient,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { abortable, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';
import { extraAwsClients, type ExtraAwsClientFactory } from './aws-extra-clients.js';
import { describeService } from './ecs.js';

export interface PlacementRef {
  aws: AwsConnection;
  cluster: string;
  service: string;
  autoScalingGroup: string;
}

/** CPU units and MiB. */
export interface Resources {
  cpu: number;
  memory: number;
}

export interface PlacementCapacity {
  task: Resources;
  instanceType: string;
  /** What one instance of that type offers. */
  instance: Resources;
  asgMax: number;
  /** Instances of the group already registered in the cluster (their free room is read from ECS). */
  registeredInstances: number;
  /** New tasks that fit in the free room of the cluster's registered container instances. */
  onRegistered: number;
  /** New tasks that fit on the instances the group adds up to its maximum. */
  onNewInstances: number;
  /** onRegistered + onNewInstances. */
  placeable: number;
}

/** How many tasks of `task`'s size fit in `free` (each resource on its own; a task needs both). */
export function tasksThatFit(free: Resources, task: Resources): number {
  const byCpu = task.cpu > 0 ? Math.floor(free.cpu / task.cpu) : Infinity;
  const byMemory = task.memory > 0 ? Math.floor(free.memory / task.memory) : Infinity;
  const fit = Math.min(byCpu, byMemory);
  return Number.isFinite(fit) ? Math.max(0, fit) : 0;
}

/** A task's size: the task-level CPU and memory, else the sum over its containers (memory, else memoryReservation). */
export function taskResources(definition: TaskDefinition): Resources {
  const containers = definition.containerDefinitions ?? [];
  const cpu = Number(definition.cpu ?? 0) || containers.reduce((sum, c) => sum + (c.cpu ?? 0), 0);
  const memory = Number(definition.memory ?? 0) || containers.reduce((sum, c) => sum + (c.memory ?? c.memoryReservation ?? 0), 0);
  return { cpu, memory };
}

export function createTaskCapacityActivities(deps: AwsDeps & { ec2?: ExtraAwsClientFactory }) {
  const clients = clientFactory(deps);
  const extra = deps.ec2 ?? extraAwsClients;

  return {
    /** Null for a service that does not run on the group's instances (Fargate): its capacity is not the group's. */
    async inspectPlacementCapacity(ref: PlacementRef): Promise<PlacementCapacity | null> {
      const { ecs, autoScaling } = clients(ref.aws);
      const ec2 = extra(ref.aws).ec2;
      const service = await describeService(ecs, ref);
      if (service.launchType === 'FARGATE' || (!service.launchType && service.capacityProviderStrategy?.length)) return null;
      const { taskDefinition } = await callAws(`describe task definition ${service.taskDefinition}`, () =>
        ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: service.taskDefinition }), abortable()),
      );
      const task = taskResources(taskDefinition!);

      const groups = await callAws(
        `describe auto scaling group ${ref.autoScalingGroup}`,
        () => autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [ref.autoScalingGroup] }), abortable()),
        'autoScalingGroup',
      );
      const group = groups.AutoScalingGroups?.[0];
      if (!group) throw invalidInput('autoScalingGroup', `no auto scaling group named '${ref.autoScalingGroup}'`);
      const instanceTypes = await groupInstanceTypes(autoScaling, ec2, group);
      const offered = await instanceResources(ec2, instanceTypes);
      // Of mixed types, count the one that fits fewest tasks: the group may launch any of them.
      const smallest = offered.reduce((a, b) => (tasksThatFit(b.resources, task) < tasksThatFit(a.resources, task) ? b : a));

      const containerInstances = await activeContainerInstances(ecs, ref.cluster);
      const groupInstanceIds = new Set((group.Instances ?? []).map((i) => i.InstanceId));
      const registeredInstances = containerInstances.filter((ci) => groupInstanceIds.has(ci.ec2InstanceId)).length;
      const onRegistered = containerInstances.reduce((sum, ci) => sum + tasksThatFit(ci.remaining, task), 0);
      const asgMax = group.MaxSize ?? 0;
      const onNewInstances = Math.max(0, asgMax - registeredInstances) * tasksThatFit(smallest.resources, task);
      return {
        task,
        instanceType: smallest.type,
        instance: smallest.resources,
        asgMax,
        registeredInstances,
        onRegistered,
        onNewInstances,
        placeable: onRegistered + onNewInstances,
      };
    },
  };
}

export type TaskCapacityActivities = ReturnType<typeof createTaskCapacityActivities>;

/** The instance types the group launches: its launch configuration's, its launch template's, or its mixed-instances overrides. */
async function groupInstanceTypes(autoScaling: AutoScalingClient, ec2: EC2Client, group: AutoScalingGroup): Promise<string[]> {
  const name = group.AutoScalingGroupName!;
  const overrides = (group.MixedInstancesPolicy?.LaunchTemplate?.Overrides ?? []).flatMap((o) => (o.InstanceType ? [o.InstanceType] : []));
  if (overrides.length) return overrides;
  if (group.LaunchConfigurationName) {
    const { LaunchConfigurations = [] } = await callAws(`describe launch configuration of ${name}`, () =>
      autoScaling.send(
        new DescribeLaunchConfigurationsCommand({ LaunchConfigurationNames: [group.LaunchConfigurationName!] }),
        abortable(),
      ),
    );
    const type = LaunchConfigurations[0]?.InstanceType;
    if (type) return [type];
  }
  const template = group.LaunchTemplate ?? group.MixedInstancesPolicy?.LaunchTemplate?.LaunchTemplateSpecification;
  if (template) {
    const { LaunchTemplateVersions = [] } = await callAws(`describe launch template of ${name}`, () =>
      ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          ...(template.LaunchTemplateId
            ? { LaunchTemplateId: template.LaunchTemplateId }
            : { LaunchTemplateName: template.LaunchTemplateName }),
          Versions: [template.Version ?? '$Default'],
        }),
        abortable(),
      ),
    );
    const type = LaunchTemplateVersions[0]?.LaunchTemplateData?.InstanceType;
    if (type) return [type];
  }
  throw invalidInput(
    'autoScalingGroup',
    `${name} names no instance type (launch configuration, launch template or overrides): its capacity cannot be told`,
  );
}

async function instanceResources(ec2: EC2Client, types: string[]): Promise<{ type: string; resources: Resources }[]> {
  const { InstanceTypes = [] } = await callAws(`describe instance types ${types.join(', ')}`, () =>
    ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: types as _InstanceType[] }), abortable()),
  );
  return types.map((type) => {
    const info = InstanceTypes.find((t) => t.InstanceType === type);
    if (!info?.VCpuInfo?.DefaultVCpus || !info.MemoryInfo?.SizeInMiB)
      throw invalidInput('autoScalingGroup', `instance type ${type} is unknown to EC2`);
    return { type, resources: { cpu: info.VCpuInfo.DefaultVCpus * 1024, memory: info.MemoryInfo.SizeInMiB } };
  });
}

async function activeContainerInstances(ecs: ECSClient, cluster: string): Promise<{ ec2InstanceId?: string; remaining: Resources }[]> {
  const arns: string[] = [];
  let token: string | undefined;
  do {
    const page = await callAws(
      `list container instances of ${cluster}`,
      () => ecs.send(new ListContainerInstancesCommand({ cluster, status: 'ACTIVE', nextToken: token }), abortable()),
      'cluster',
    );
    arns.push(...(page.containerInstanceArns ?? []));
    token = page.nextToken;
  } while (token);
  const found: { ec2InstanceId?: string; remaining: Resources }[] = [];
  for (let i = 0; i < arns.length; i += 100) {
    const { containerInstances = [] } = await callAws(
      `describe container instances of ${cluster}`,
      () => ecs.send(new DescribeContainerInstancesCommand({ cluster, containerInstances: arns.slice(i, i + 100) }), abortable()),
      'cluster',
    );
    for (const ci of containerInstances) {
      const value = (name: string) => ci.remainingResources?.find((r) => r.name === name)?.integerValue ?? 0;
      found.push({
        ...(ci.ec2InstanceId ? { ec2InstanceId: ci.ec2InstanceId } : {}),
        remaining: { cpu: value('CPU'), memory: value('MEMORY') },
      });
    }
  }
  return found;
}
