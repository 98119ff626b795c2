/**
 * The ECS service scheduler moto lacks, for the sandbox: it keeps each
 * service of a cluster at its desired count with RunTask/StopTask, stamps
 * each task's start time, and plays the load balancer's health checks.
 *
 * How health is shown: moto's DescribeTargetHealth calls every registered
 * target healthy, so the simulator registers a task's address in the
 * service's target groups only once the task has "passed its health checks"
 * (`healthDelayMs` after it started). Until then the address is absent from
 * the target group, which is exactly what a runbook sees of a target that is
 * not yet healthy (it is not serving). A task meant to fail is never
 * registered and is stopped when its health checks would have failed, as
 * ECS stops tasks that fail ELB health checks. The runbook's own logic is
 * untouched: it reads ECS and ELB as it would in AWS.
 *
 * Start times: moto never sets a task's `startedAt`, so the simulator tags
 * each task it runs with its start (`START_TIME_TAG`, which the ECS
 * activities read when `startedAt` is absent) and with its planned health
 * outcome; the tags are the simulator's whole memory, so it can restart.
 */
import {
  DescribeServicesCommand,
  DescribeTasksCommand,
  ECSClient,
  ListServicesCommand,
  ListTasksCommand,
  RunTaskCommand,
  StopTaskCommand,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { START_TIME_TAG } from '../../activities/ecs.js';
import type { OneOffTasks } from './one-off-tasks.js';
import { DIGEST_TAG, type Rollout, type ServiceImages } from './service-images.js';

/** Tag holding the health a task was started with: `healthy` or `failing`. */
export const PLANNED_HEALTH_TAG = 'simulatedHealth';
type PlannedHealth = 'healthy' | 'failing';

export interface EcsSimulatorSettings {
  /** How long a new task takes to pass its health checks. Default 0. */
  healthDelayMs?: number;
  /** Tasks started from now on fail their health checks (and are stopped). */
  failNewTasks?: boolean;
  /** The next this-many tasks started fail, then tasks are healthy again (a transient failure). */
  failNextTasks?: number;
}

/** What a new simulator starts with: healthy at once; a test that changes it puts this back when done. */
export const SIMULATOR_DEFAULTS: Required<EcsSimulatorSettings> = { healthDelayMs: 0, failNewTasks: false, failNextTasks: 0 };

export interface EcsSimulatorOptions {
  /** Pause between reconciliations while anything is changing (tasks starting, stopping, a deployment). Default 250 ms. */
  tickMs?: number;
  /**
   * Pause once every service is settled (its tasks at the desired count, all
   * serving, nothing to replace). Default 1 s. Every tick costs moto a dozen
   * requests, and moto serves every lane of the tests on one core.
   */
  idleTickMs?: number;
  /** Runs the cluster's one-off tasks (RunTask outside any service), e.g. migrations. Unset, they are left alone. */
  oneOffTasks?: OneOffTasks;
  /**
   * Resolves services' ECR image tags to digests per deployment; a forced new
   * deployment then replaces the tasks one at a time (minimum healthy 100%,
   * maximum 125%), as ECS does. Unset, images are not followed.
   */
  images?: ServiceImages;
}

/** Credentials moto accepts; the simulator only ever talks to the emulator. */
const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
const RUN_TASK_LIMIT = 10;
/** DescribeTasks takes at most this many tasks. */
const DESCRIBE_TASKS_LIMIT = 100;

export class EcsSimulator {
  private readonly ecs: ECSClient;
  private readonly elbv2: ElasticLoadBalancingV2Client;
  private readonly tickMs: number;
  private readonly idleTickMs: number;
  private readonly oneOffTasks: OneOffTasks | undefined;
  private readonly images: ServiceImages | undefined;
  private healthDelayMs = SIMULATOR_DEFAULTS.healthDelayMs;
  private failNewTasks = SIMULATOR_DEFAULTS.failNewTasks;
  private failNextTasks = SIMULATOR_DEFAULTS.failNextTasks;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** The last reconciliation error, for a test or `runbook dev` to show; reconciling goes on regardless. */
  lastError: Error | undefined;

  constructor(
    endpoint: string,
    region: string,
    private readonly cluster: string,
    options: EcsSimulatorOptions = {},
  ) {
    const config = { endpoint, region, credentials: MOTO_CREDENTIALS };
    this.ecs = new ECSClient(config);
    this.elbv2 = new ElasticLoadBalancingV2Client(config);
    this.tickMs = options.tickMs ?? 250;
    this.idleTickMs = options.idleTickMs ?? 1_000;
    this.oneOffTasks = options.oneOffTasks;
    this.images = options.images;
  }

  configure(settings: EcsSimulatorSettings): void {
    if (settings.healthDelayMs !== undefined) this.healthDelayMs = settings.healthDelayMs;
    if (settings.failNewTasks !== undefined) this.failNewTasks = settings.failNewTasks;
    if (settings.failNextTasks !== undefined) this.failNextTasks = settings.failNextTasks;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops reconciling; resolves once a reconciliation in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /**
   * One pass over every service of the cluster, on one reading of its tasks
   * (the loop calls this; tests may too). Resolves true when the cluster is
   * settled: nothing was done and nothing is under way.
   */
  async reconcile(): Promise<boolean> {
    const services = await this.activeServices();
    const tasks = await this.clusterTasks();
    let settled = true;
    for (const service of services) {
      const own = tasks.filter((t) => t.group === `service:${service.serviceName}`).map((t) => this.simulated(t));
      if (!(await this.reconcileService(service, own))) settled = false;
    }
    if (this.oneOffTasks && !(await this.oneOffTasks.reconcile(this.ecs, this.cluster, tasks))) settled = false;
    return settled;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      let settled = false;
      this.running = this.reconcile()
        .then((s) => ((settled = s), (this.lastError = undefined)))
        .catch((err: Error) => (this.lastError = err))
        .then(() => {
          if (!this.stopped) this.schedule(settled ? this.idleTickMs : this.tickMs);
        });
    }, delayMs);
    // The simulator serves whoever runs it; it must not keep a finished process alive.
    this.timer.unref();
  }

  private async activeServices(): Promise<Service[]> {
    const { serviceArns = [] } = await this.ecs.send(new ListServicesCommand({ cluster: this.cluster }));
    if (!serviceArns.length) return [];
    const { services = [] } = await this.ecs.send(new DescribeServicesCommand({ cluster: this.cluster, services: serviceArns }));
    return services.filter((s) => s.status === 'ACTIVE');
  }

  /** Resolves true when the service is settled: nothing done, no task waiting for its health checks, nothing to replace. */
  private async reconcileService(service: Service, tasksOfService: SimulatedTask[]): Promise<boolean> {
    const targetGroups = await this.targetGroupsOf(service);
    const isServing = (task: SimulatedTask) => Boolean(task.ip) && targetGroups.every((g) => g.registered.has(task.ip!));
    let tasks = tasksOfService;
    let acted = false;

    // Health checks: a task whose delay has passed either joins its target groups or is stopped as failed.
    const now = Date.now();
    const checking = tasks.some((t) => t.checkedAt > now && !isServing(t));
    for (const task of tasks.filter((t) => t.checkedAt <= now && !isServing(t))) {
      if (task.planned === 'failing') {
        await this.stopTask(
          task.arn,
          `Task failed ELB health checks in ${targetGroups.map((g) => g.name).join(', ') || 'its target group'} (simulated)`,
        );
        tasks = tasks.filter((t) => t !== task);
        acted = true;
      } else if (task.ip) {
        for (const group of targetGroups.filter((g) => !g.registered.has(task.ip!))) {
          await this.elbv2.send(new RegisterTargetsCommand({ TargetGroupArn: group.arn, Targets: [{ Id: task.ip, Port: group.port }] }));
          group.registered.add(task.ip);
          acted = true;
        }
      }
    }

    const desired = service.desiredCount ?? 0;
    const rollout = await this.images?.rolloutOf(this.ecs, service);
    const replacing = rollout ? await this.replaceOneAtATime(service, tasks, rollout, isServing) : undefined;
    if (replacing) {
      tasks = replacing;
      acted = true;
    } else if (tasks.length < desired) {
      await this.runTasks(service, desired - tasks.length, rollout);
      acted = true;
    } else if (tasks.length > desired) {
      // Scale in the tasks that serve least: not yet healthy first, then the newest.
      const servingLeastFirst = [...tasks].sort((a, b) => Number(isServing(a)) - Number(isServing(b)) || b.startedAt - a.startedAt);
      for (const task of servingLeastFirst.slice(0, tasks.length - desired)) {
        await this.stopTask(task.arn, 'Service scaled in (simulated scheduler)');
        tasks = tasks.filter((t) => t !== task);
      }
      acted = true;
    }

    // A stopped task leaves its target groups, as ECS deregisters it.
    const addresses = new Set(tasks.flatMap((t) => (t.ip ? [t.ip] : [])));
    for (const group of targetGroups) {
      const gone = [...group.registered].filter((ip) => !addresses.has(ip));
      if (gone.length) {
        await this.elbv2.send(
          new DeregisterTargetsCommand({ TargetGroupArn: group.arn, Targets: gone.map((Id) => ({ Id, Port: group.port })) }),
        );
        acted = true;
      }
    }
    return !acted && !checking;
  }

  /**
   * One step of a deployment: while tasks of another digest run, start one
   * task of the new digest when none is starting (at most 125% of the desired
   * count), and stop one old task once the tasks serving exceed the desired
   * count (never below 100%). Returns the tasks left, or undefined when there
   * is nothing to replace.
   */
  private async replaceOneAtATime(
    service: Service,
    tasks: SimulatedTask[],
    rollout: Rollout,
    isServing: (t: SimulatedTask) => boolean,
  ): Promise<SimulatedTask[] | undefined> {
    const old = tasks.filter((t) => t.digest !== rollout.digest);
    if (!old.length) return undefined;
    const desired = service.desiredCount ?? 0;
    const fresh = tasks.filter((t) => t.digest === rollout.digest);
    const serving = tasks.filter(isServing).length;
    if (serving > desired || (serving >= desired && old.some((t) => !isServing(t)))) {
      // Old tasks that do not serve go first, then the oldest.
      const victim = [...old].sort((a, b) => Number(isServing(a)) - Number(isServing(b)) || a.startedAt - b.startedAt)[0]!;
      await this.stopTask(
        victim.arn,
        `Task replaced by deployment ${service.deployments?.[0]?.id ?? ''} of ${short(rollout.digest)}; it ran ${short(victim.digest)} (simulated scheduler)`,
      );
      return tasks.filter((t) => t !== victim);
    }
    const maximum = desired + Math.max(1, Math.floor(desired / 4));
    if (!fresh.some((t) => !isServing(t)) && tasks.length < maximum) await this.runTasks(service, 1, rollout);
    return tasks;
  }

  private async targetGroupsOf(service: Service): Promise<SimulatedTargetGroup[]> {
    const groups: SimulatedTargetGroup[] = [];
    for (const lb of service.loadBalancers ?? []) {
      if (!lb.targetGroupArn) continue;
      const { TargetHealthDescriptions = [] } = await this.elbv2.send(
        new DescribeTargetHealthCommand({ TargetGroupArn: lb.targetGroupArn }),
      );
      groups.push({
        arn: lb.targetGroupArn,
        name: lb.targetGroupArn.split('/')[1] ?? lb.targetGroupArn,
        port: lb.containerPort,
        registered: new Set(TargetHealthDescriptions.flatMap((d) => (d.Target?.Id ? [d.Target.Id] : []))),
      });
    }
    return groups;
  }

  private async runTasks(service: Service, count: number, rollout?: Rollout): Promise<void> {
    const plans = Array.from({ length: count }, () => (this.images?.isBad(rollout?.digest) ? 'failing' : this.nextPlannedHealth()));
    for (const planned of ['failing', 'healthy'] as const) {
      const batch = plans.filter((p) => p === planned).length;
      for (let left = batch; left > 0; left -= RUN_TASK_LIMIT) {
        const tasks = await launchServiceTasks(this.ecs, this.cluster, service, Math.min(left, RUN_TASK_LIMIT), planned, rollout?.digest);
        if (rollout) for (const task of tasks) await this.images!.started(task.taskArn!, rollout);
      }
    }
  }

  /** Failure is decided when a task starts: a later `configure` does not change tasks already running. */
  private nextPlannedHealth(): PlannedHealth {
    if (this.failNextTasks > 0) {
      this.failNextTasks--;
      return 'failing';
    }
    return this.failNewTasks ? 'failing' : 'healthy';
  }

  /** Every task of the cluster that is meant to run, services' and one-off, with their tags. */
  private async clusterTasks(): Promise<Task[]> {
    const { taskArns = [] } = await this.ecs.send(new ListTasksCommand({ cluster: this.cluster, desiredStatus: 'RUNNING' }));
    const tasks: Task[] = [];
    for (let i = 0; i < taskArns.length; i += DESCRIBE_TASKS_LIMIT) {
      const page = taskArns.slice(i, i + DESCRIBE_TASKS_LIMIT);
      const described = await this.ecs.send(new DescribeTasksCommand({ cluster: this.cluster, tasks: page, include: ['TAGS'] }));
      tasks.push(...(described.tasks ?? []));
    }
    return tasks.filter((t) => t.lastStatus !== 'STOPPED');
  }

  private simulated(task: Task): SimulatedTask {
    const tag = (key: string) => task.tags?.find((t) => t.key === key)?.value;
    const startedAt = Date.parse(tag(START_TIME_TAG) ?? '') || 0;
    return {
      arn: task.taskArn!,
      ip: taskAddress(task),
      startedAt,
      checkedAt: startedAt + this.healthDelayMs,
      planned: tag(PLANNED_HEALTH_TAG) === 'failing' ? 'failing' : 'healthy',
      digest: tag(DIGEST_TAG),
    };
  }

  private async stopTask(arn: string, reason: string): Promise<void> {
    await this.ecs.send(new StopTaskCommand({ cluster: this.cluster, task: arn, reason }));
  }
}

interface SimulatedTargetGroup {
  arn: string;
  name: string;
  port: number | undefined;
  /** Addresses registered now: the tasks that pass their health checks. */
  registered: Set<string>;
}

interface SimulatedTask {
  arn: string;
  ip: string | undefined;
  startedAt: number;
  /** When its health checks pass or fail. */
  checkedAt: number;
  planned: PlannedHealth;
  /** The image digest it runs, when the simulator follows the service's image. */
  digest: string | undefined;
}

/** Starts tasks for a service as its scheduler would: in the service's group, on its network, tagged with their start. */
export async function launchServiceTasks(
  ecs: ECSClient,
  cluster: string,
  service: Service,
  count: number,
  planned: PlannedHealth,
  digest?: string,
): Promise<Task[]> {
  const { tasks = [], failures = [] } = await ecs.send(
    new RunTaskCommand({
      cluster,
      taskDefinition: service.taskDefinition,
      count,
      launchType: service.launchType,
      group: `service:${service.serviceName}`,
      startedBy: 'ecs-simulator',
      networkConfiguration: service.networkConfiguration,
      tags: [
        { key: START_TIME_TAG, value: new Date().toISOString() },
        { key: PLANNED_HEALTH_TAG, value: planned },
        ...(digest ? [{ key: DIGEST_TAG, value: digest }] : []),
      ],
    }),
  );
  if (tasks.length < count) {
    throw new Error(
      `ECS placed ${tasks.length} of ${count} tasks for ${service.serviceName}${failures.length ? `: ${failures.map((f) => f.reason).join(', ')}` : ''}`,
    );
  }
  return tasks;
}

/** A digest as people compare them: its first hex digits. */
function short(digest: string | undefined): string {
  return digest ? digest.replace(/^sha256:/, '').slice(0, 12) : 'no known image';
}

export function taskAddress(task: Task): string | undefined {
  return task.attachments?.find((a) => a.type === 'ElasticNetworkInterface')?.details?.find((d) => d.name === 'privateIPv4Address')?.value;
}
