/** Catalog entry of `rolling-restart` (seed 003, "Restart services"). */
import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { rollingRestartPlan, type RollingRestartParams } from '../workflows/rolling-restart.js';
import { defineRunbook } from './definition.js';

/** "45m", "90s", "1h": milliseconds once validated. */
const duration = durationSchema;

const params = z
  .object({
    cluster: z.string().min(1).describe('ECS cluster the service runs in'),
    service: z.string().min(1).describe('ECS service to restart'),
    autoScalingGroup: z.string().min(1).describe('auto scaling group raised to its maximum to make room for the new tasks'),
    targetGroup: z.string().min(1).describe('target group (ARN or name) the service registers its tasks in; health is read there'),
    newTasks: z.number().int().positive().optional().describe('new tasks to start before any old one stops (default: as many as run now)'),
    healthTimeout: duration.default('45m').describe('how long the new tasks may take to become healthy before the run rolls back'),
    restoreAsg: z
      .boolean()
      .default(false)
      .describe("put the group's desired capacity back at the end (default: leave it to scale in by itself, as the seed does)"),
  })
  // A mistyped --set key must not silently fall back to the default service.
  .strict();

export const rollingRestartRunbook = defineRunbook({
  name: 'rolling-restart',
  workflowType: 'rollingRestart',
  description:
    'restart an ECS service without losing capacity: start new tasks, wait until they are healthy, stop the old ones, restore the count',
  params,
  plan: rollingRestartPlan,
  target: (p) => p.service,
  summary: (p, env) =>
    `restart ${p.service} (cluster ${p.cluster}) on ${env.name}: start ${p.newTasks ?? 'as many new tasks as run now'}${p.newTasks ? ' new tasks' : ''}, ` +
    `wait until healthy in ${p.targetGroup}, stop the old tasks`,
  prepare: (p, env): RollingRestartParams => ({
    aws: env.aws,
    cluster: p.cluster,
    service: p.service,
    autoScalingGroup: p.autoScalingGroup,
    targetGroup: p.targetGroup,
    ...(p.newTasks !== undefined ? { newTasks: p.newTasks } : {}),
    healthTimeoutMs: p.healthTimeout,
    restoreAsg: p.restoreAsg,
  }),
});

export type RollingRestartInputs = z.input<typeof params>;
