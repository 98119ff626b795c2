/**
 * A canary deployment of an ECS service (seed 004): ECS replaces the tasks
 * one at a time; the runbook watches the tasks that run the new image digest
 * and stops the deployment at the first one that fails. New tasks are told
 * apart by digest (what they run), not by start time.
 */
import { DescribeTaskDefinitionCommand, UpdateServiceCommand } from '@aws-sdk/client-ecs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { abortable, callAws, clientFactory } from './aws.js';
import { describeService, describeTasks, isDeploymentInProgress, listServiceTasks, type ServiceRef } from './ecs.js';
import { readTargetHealth } from './elb.js';
import { taskFactsReader, type TaskFactsDeps } from './task-facts.js';

export interface DeployService {
  desiredCount: number;
  deploymentInProgress: boolean;
  taskDefinitionArn: string;
  /** Image of each container of the service's task definition. */
  images: { container: string; image: string }[];
  targetGroupArns: string[];
}

export interface CanaryArgs extends ServiceRef {
  container: string;
  digest: string;
  targetGroupArn: string;
  toleratedFailures: number;
  deadline: string;
  pollMs?: number;
}

export interface CanaryResult {
  newTaskArns: string[];
  failures: { arn: string; why: string }[];
  /** The fewest tasks serving in the target group at any poll. */
  minHealthy: number;
  polls: number;
}

interface CanaryProgress {
  seen: string[];
  failures: { arn: string; why: string }[];
  minHealthy: number;
  polls: number;
}

const DEFAULT_POLL_MS = 1_000;

export function createCanaryActivities(deps: TaskFactsDeps) {
  const clients = clientFactory(deps);
  const taskFacts = taskFactsReader(deps);

  return {
    async inspectDeployService(ref: ServiceRef): Promise<DeployService> {
      const ecs = clients(ref.aws).ecs;
      const service = await describeService(ecs, ref);
      const { taskDefinition } = await callAws(`describe task definition of ${ref.service}`, () =>
        ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: service.taskDefinition! }), abortable()),
      );
      return {
        desiredCount: service.desiredCount ?? 0,
        deploymentInProgress: isDeploymentInProgress(service),
        taskDefinitionArn: taskDefinition!.taskDefinitionArn!,
        images: (taskDefinition!.containerDefinitions ?? []).map((c) => ({ container: c.name ?? '', image: c.image ?? '' })),
        targetGroupArns: (service.loadBalancers ?? []).flatMap((lb) => (lb.targetGroupArn ? [lb.targetGroupArn] : [])),
      };
    },

    /**
     * Starts a deployment that resolves the tag again, one task at a time
     * (minimum healthy 100%, maximum 125%), with ECS's circuit breaker
     * rollback off: the runbook decides what a failure undoes.
     */
    async forceNewDeployment(ref: ServiceRef): Promise<void> {
      await callAws(`force a new deployment of ${ref.service}`, () =>
        clients(ref.aws).ecs.send(
          new UpdateServiceCommand({
            cluster: ref.cluster,
            service: ref.service,
            forceNewDeployment: true,
            deploymentConfiguration: {
              minimumHealthyPercent: 100,
              maximumPercent: 125,
              deploymentCircuitBreaker: { enable: false, rollback: false },
            },
          }),
          abortable(),
        ),
      );
    },

    /**
     * Waits until every task of the service runs `digest` and serves, failing
     * as soon as more new tasks failed than tolerated. Heartbeats what it saw.
     */
    async watchCanary(args: CanaryArgs): Promise<CanaryResult> {
      const context = Context.current();
      const ecs = clients(args.aws).ecs;
      const elbv2 = clients(args.aws).elbv2;
      const progress: CanaryProgress = {
        seen: [],
        failures: [],
        minHealthy: Number.MAX_SAFE_INTEGER,
        polls: 0,
        ...(context.info.heartbeatDetails as CanaryProgress | undefined),
      };
      for (;;) {
        const [service, running, targets] = await Promise.all([
          describeService(ecs, args),
          listServiceTasks(ecs, args),
          readTargetHealth(elbv2, args.targetGroupArn),
        ]);
        const healthyIps = new Set(targets.filter((t) => t.state === 'healthy').map((t) => t.id));
        const facts = await taskFacts({ aws: args.aws, cluster: args.cluster, taskArns: running.map((t) => t.arn) });
        const digestOf = (arn: string) =>
          facts.find((f) => f.taskArn === arn)?.containers.find((c) => c.name === args.container)?.imageDigest;
        const fresh = running.filter((t) => digestOf(t.arn) === args.digest);
        progress.seen = [...new Set([...progress.seen, ...fresh.map((t) => t.arn)])];
        const stopped = (await describeTasks(ecs, args.cluster, progress.seen)).filter((t) => t.lastStatus === 'STOPPED');
        for (const task of stopped) {
          if (!progress.failures.some((f) => f.arn === task.arn))
            progress.failures.push({ arn: task.arn, why: `stopped: ${task.stoppedReason ?? 'no reason given'}` });
        }
        progress.minHealthy = Math.min(progress.minHealthy, running.filter((t) => t.ip && healthyIps.has(t.ip)).length);
        progress.polls++;
        context.heartbeat(progress);
        if (progress.failures.length > args.toleratedFailures) {
          throw ApplicationFailure.create({
            type: 'CanaryFailed',
            message: `new tasks running ${args.digest} failed (${progress.failures.map((f) => `${f.arn.split('/').at(-1)} ${f.why}`).join('; ')}); ${args.toleratedFailures} tolerated`,
            nonRetryable: true,
            details: [progress],
          });
        }
        const desired = service.desiredCount ?? 0;
        const serving = fresh.filter((t) => t.ip && healthyIps.has(t.ip));
        if (serving.length >= desired && running.length === fresh.length) {
          return {
            newTaskArns: fresh.map((t) => t.arn),
            failures: progress.failures,
            minHealthy: progress.minHealthy,
            polls: progress.polls,
          };
        }
        if (Date.now() > Date.parse(args.deadline)) {
          throw ApplicationFailure.create({
            type: 'CanaryTimeout',
            message: `${serving.length} of ${desired} tasks run ${args.digest} and serve at the deadline`,
            nonRetryable: true,
          });
        }
        await context.sleep(args.pollMs ?? DEFAULT_POLL_MS);
      }
    },
  };
}

export type CanaryActivities = ReturnType<typeof createCanaryActivities>;
