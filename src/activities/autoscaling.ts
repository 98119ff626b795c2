/** EC2 Auto Scaling: read a group's capacity, set its desired capacity. */
import { DescribeAutoScalingGroupsCommand, SetDesiredCapacityCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { abortable, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';

export interface AutoScalingGroupRef {
  aws: AwsConnection;
  autoScalingGroup: string;
}

export interface Capacity {
  min: number;
  max: number;
  desired: number;
  /** Instances the group has now, in any lifecycle state. */
  instances: number;
}

export function createAutoScalingActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    async inspectAutoScalingGroup(ref: AutoScalingGroupRef): Promise<Capacity> {
      return readCapacity(clients(ref.aws).autoScaling, ref.autoScalingGroup);
    },

    /** Sets the desired capacity (idempotent: it sets a value), ignoring cooldowns as an operator's edit does. */
    async setDesiredCapacity(args: AutoScalingGroupRef & { desiredCapacity: number }): Promise<{ desiredCapacity: number }> {
      const autoScaling = clients(args.aws).autoScaling;
      await callAws(
        `set desired capacity of ${args.autoScalingGroup} to ${args.desiredCapacity}`,
        () =>
          autoScaling.send(
            new SetDesiredCapacityCommand({
              AutoScalingGroupName: args.autoScalingGroup,
              DesiredCapacity: args.desiredCapacity,
              HonorCooldown: false,
            }),
            abortable(),
          ),
        'autoScalingGroup',
      );
      return { desiredCapacity: args.desiredCapacity };
    },
  };
}

export type AutoScalingActivities = ReturnType<typeof createAutoScalingActivities>;

async function readCapacity(autoScaling: AutoScalingClient, name: string): Promise<Capacity> {
  const answer = await callAws(
    `describe auto scaling group ${name}`,
    () => autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }), abortable()),
    'autoScalingGroup',
  );
  const group = answer.AutoScalingGroups?.[0];
  // AWS answers an unknown name with an empty list, not an error.
  if (!group) throw invalidInput('autoScalingGroup', `no auto scaling group named '${name}'`);
  return { min: group.MinSize ?? 0, max: group.MaxSize ?? 0, desired: group.DesiredCapacity ?? 0, instances: group.Instances?.length ?? 0 };
}
