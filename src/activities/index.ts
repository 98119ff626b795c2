/**
 * Every activity the runbook worker registers, built from the clients it is
 * given so tests can hand in their own (pointed at the local stack).
 */
import type { AwsClientFactory } from './aws.js';
import { createAutoScalingActivities } from './autoscaling.js';
import { createEcsActivities } from './ecs.js';
import { createElbActivities } from './elb.js';
import { notifyCheckpoint } from './notify.js';
import { createTaskHealthActivities } from './task-health.js';

export interface ActivityDeps {
  /** AWS clients per connection; unset, the SDK's default credential chain. */
  aws?: AwsClientFactory;
}

export function createActivities(deps: ActivityDeps = {}) {
  return {
    notifyCheckpoint,
    ...createAutoScalingActivities(deps),
    ...createEcsActivities(deps),
    ...createElbActivities(deps),
    ...createTaskHealthActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
