/** Elastic Load Balancing v2: find a target group, read the health of its targets. */
import {
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  type ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { abortable, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';

export interface TargetState {
  /** An IP address or instance ID. */
  id: string;
  port?: number;
  /** initial, healthy, unhealthy, unused, draining, unavailable */
  state: string;
  reason?: string;
}

export interface TargetGroupSnapshot {
  arn: string;
  name: string;
  /** ip, instance, lambda or alb. */
  targetType: string;
  targets: TargetState[];
  healthy: number;
}

export function createElbActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    /** Finds the target group by ARN or name and reads the health of every registered target. */
    async inspectTargetGroup(args: { aws: AwsConnection; targetGroup: string }): Promise<TargetGroupSnapshot> {
      const elbv2 = clients(args.aws).elbv2;
      const group = await findTargetGroup(elbv2, args.targetGroup);
      const targets = await readTargetHealth(elbv2, group.arn);
      return { ...group, targets, healthy: countHealthy(targets) };
    },
  };
}

export type ElbActivities = ReturnType<typeof createElbActivities>;

export function countHealthy(targets: TargetState[]): number {
  return targets.filter((t) => t.state === 'healthy').length;
}

/** Every registered target and its health; unregistered addresses are absent (they are not serving). */
export async function readTargetHealth(elbv2: ElasticLoadBalancingV2Client, targetGroupArn: string): Promise<TargetState[]> {
  const answer = await callAws(
    `read target health of ${targetGroupArn}`,
    () => elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }), abortable()),
    'targetGroup',
  );
  return (answer.TargetHealthDescriptions ?? []).flatMap((d) =>
    d.Target?.Id
      ? [
          {
            id: d.Target.Id,
            ...(d.Target.Port ? { port: d.Target.Port } : {}),
            state: d.TargetHealth?.State ?? 'unknown',
            ...(d.TargetHealth?.Reason ? { reason: d.TargetHealth.Reason } : {}),
          },
        ]
      : [],
  );
}

async function findTargetGroup(
  elbv2: ElasticLoadBalancingV2Client,
  arnOrName: string,
): Promise<Omit<TargetGroupSnapshot, 'targets' | 'healthy'>> {
  const byArn = arnOrName.startsWith('arn:');
  const answer = await callAws(
    `find target group ${arnOrName}`,
    () => elbv2.send(new DescribeTargetGroupsCommand(byArn ? { TargetGroupArns: [arnOrName] } : { Names: [arnOrName] }), abortable()),
    'targetGroup',
  );
  const group = answer.TargetGroups?.[0];
  if (!group?.TargetGroupArn) throw invalidInput('targetGroup', `no target group ${byArn ? 'with ARN' : 'named'} '${arnOrName}'`);
  return { arn: group.TargetGroupArn, name: group.TargetGroupName ?? arnOrName, targetType: group.TargetType ?? 'instance' };
}
