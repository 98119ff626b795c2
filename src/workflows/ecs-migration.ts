/**
 * Seed 003, "Migrations":
 *
 *   select the most recent task definition of the app
 *   Run Task on Fargate in the cluster's VPC, in subnets named PrivateSubnet,
 *     with the app security group and no public IP
 *   override the `app` container's command with `run,migration:run`
 *   monitor the task's log output in CloudWatch until it ends
 *
 * The revision is pinned in preflight (a "latest" that moves between the check
 * and the run is how a migration runs on the wrong image). A migration cannot
 * be undone and must not be stopped half-way: once it is about to start the
 * run is committed, and starting and following the task run in a scope a
 * cancel does not reach. Success is the `app` container's exit code 0, nothing less.
 */
import { CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import type { RunbookInput } from '../messages.js';
import type { FoundRun } from '../activities/runs.js';
import type { MigrationOutcome, MigrationSetup, MigrationTaskActivities, StartedTask } from '../activities/migration-task.js';
import type { MigrationRunsActivities } from '../activities/migration-runs.js';
import type { Login } from '../activities/pg-connect.js';
import type { SchemaMigrationActivities, SchemaMigrations } from '../activities/schema-migrations.js';
import { definePlan, refuseIf, runRunbook, stepActivities, API_RETRY, WAIT_RETRY, type RunbookOf } from './engine/index.js';

export interface EcsMigrationParams {
  aws: AwsConnection;
  cluster: string;
  /** Task definition family; preflight pins its newest ACTIVE revision. */
  taskDefinition: string;
  container: string;
  command: string[];
  vpc: string;
  subnetName: string;
  securityGroup: string;
  /** Refuse unless the pinned revision's image has this tag. */
  expectedImageTag?: string;
  /** Where `schema_migration` is. */
  database: Login;
  /** A protected environment asks for approval at `run-migration`. */
  protectedEnv: boolean;
  /** Where the same image must have migrated first (production: staging). */
  stagingEnv?: string;
  requireStagingRun: boolean;
  stagingOverrideReason?: string;
  timeoutMs: number;
}

export interface EcsMigrationResult {
  taskDefinitionArn: string;
  revision: number;
  image: string;
  imageTag: string | null;
  taskArn: string;
  exitCode: number;
  logGroup: string;
  logStream: string;
  logTail: string[];
  before: { count: number; newest: string | null };
  after: { count: number; newest: string | null };
  /** Versions the migration added to schema_migration. */
  applied: string[];
  staging: FoundRun | { waived: string } | null;
}

export const ecsMigrationPlan = definePlan({
  steps: ['preflight', 'run-migration', 'run-task', 'follow-task', 'verify'],
  checkpoints: ['run-migration'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
type Migration = RunbookOf<EcsMigrationParams, typeof ecsMigrationPlan>;

const aws = stepActivities<MigrationTaskActivities & MigrationRunsActivities & SchemaMigrationActivities>({
  startToCloseTimeout: '1 minute',
  retry: API_RETRY,
});

/** The wait heartbeats its log position, so a crashed worker's attempt resumes within seconds where it was. */
function followActivities(timeoutMs: number) {
  return stepActivities<MigrationTaskActivities>({
    startToCloseTimeout: timeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: WAIT_RETRY,
  });
}

/** What preflight found: the pinned revision and everything the run will use. */
interface Found extends MigrationSetup {
  image: string;
  log: NonNullable<MigrationSetup['log']>;
  securityGroup: NonNullable<MigrationSetup['securityGroup']>;
  before: SchemaMigrations;
  staging: EcsMigrationResult['staging'];
}

export async function ecsMigration(input: RunbookInput): Promise<EcsMigrationResult> {
  return runRunbook(input, ecsMigrationPlan, async (rb: Migration) => {
    const p = rb.params;
    const found = await rb.read(
      'preflight',
      `pin the newest ${p.taskDefinition} revision, check its ${p.container} container, the network and ${p.cluster}, read schema_migration`,
      () => preflight(rb),
      { detail: preflightDetail },
    );
    await approveMigration(rb, found);
    rb.commit('a migration cannot be undone: the schema stands as the migration task left it');
    // A cancel must not stop a migration half-way: the task is started, followed and checked to its end regardless.
    return CancellationScope.nonCancellable(async () => {
      const task = await runTask(rb, found);
      const outcome = await followTask(rb, found, task);
      const after = await verify(rb, found);
      return summarize(rb, found, task, outcome, after);
    });
  });
}

async function approveMigration(rb: Migration, found: Found): Promise<void> {
  const p = rb.params;
  if (!p.protectedEnv) return rb.skip('run-migration', `${rb.env} is not protected: no approval needed`);
  await rb.checkpoint(
    'run-migration',
    `run \`${p.command.join(' ')}\` on ${rb.env} with ${found.taskDefinitionArn.split('/').at(-1)} (image ${found.image}); ` +
      `schema_migration has ${found.before.count} rows, newest ${found.before.newest ?? 'none'}; a migration cannot be undone`,
  );
}

async function runTask(rb: Migration, found: Found): Promise<StartedTask> {
  const p = rb.params;
  const { workflowId, runId } = workflowInfo();
  return rb.change(
    'run-task',
    `run ${found.taskDefinitionArn.split('/').at(-1)} on Fargate in ${p.cluster} (${found.subnets.length} private subnets, ${found.securityGroup.id}, no public IP) with ${p.container} running \`${p.command.join(' ')}\``,
    () =>
      aws.runMigrationTask({
        aws: p.aws,
        cluster: p.cluster,
        taskDefinitionArn: found.taskDefinitionArn,
        container: p.container,
        command: p.command,
        subnets: found.subnets.map((s) => s.id),
        securityGroup: found.securityGroup.id,
        logStreamPrefix: found.log.streamPrefix,
        workflowId,
        runId,
      }),
    {
      detail: (t) => `${t.started ? 'started' : 'found already started'} ${t.taskArn}`,
      dryResult: { taskArn: '(dry run)', logStream: '(dry run)', started: false },
    },
  );
}

async function followTask(rb: Migration, found: Found, task: StartedTask): Promise<MigrationOutcome> {
  const p = rb.params;
  const deadline = new Date(Date.now() + p.timeoutMs).toISOString();
  return rb.change(
    'follow-task',
    `follow ${task.logStream} in ${found.log.group} until the task stops; success only on exit code 0`,
    () =>
      followActivities(p.timeoutMs).followMigrationTask({
        aws: p.aws,
        cluster: p.cluster,
        taskArn: task.taskArn,
        container: p.container,
        log: { group: found.log.group, stream: task.logStream },
        deadline,
      }),
    {
      detail: (o) => `exit code ${o.exitCode} after ${o.lines} log lines; last:\n${o.tail.slice(-5).join('\n')}`,
      dryResult: { taskArn: task.taskArn, exitCode: 0, logGroup: found.log.group, logStream: task.logStream, lines: 0, tail: [] },
    },
  );
}

async function verify(rb: Migration, found: Found): Promise<SchemaMigrations> {
  const p = rb.params;
  return rb.read(
    'verify',
    'read schema_migration after the migration',
    () => aws.readSchemaMigrations({ db: { aws: p.aws, login: p.database } }),
    {
      detail: (after) => `${after.count} rows (${after.count - found.before.count} new), newest ${after.newest ?? 'none'}`,
    },
  );
}

function summarize(rb: Migration, found: Found, task: StartedTask, outcome: MigrationOutcome, after: SchemaMigrations): EcsMigrationResult {
  const before = new Set(found.before.versions);
  return {
    taskDefinitionArn: found.taskDefinitionArn,
    revision: found.revision,
    image: found.image,
    imageTag: found.imageTag ?? null,
    taskArn: task.taskArn,
    exitCode: outcome.exitCode,
    logGroup: found.log.group,
    logStream: task.logStream,
    logTail: outcome.tail,
    before: { count: found.before.count, newest: found.before.newest },
    after: { count: after.count, newest: after.newest },
    applied: rb.dryRun ? [] : after.versions.filter((v) => !before.has(v)),
    staging: found.staging,
  };
}

/** Reads everything the run depends on and refuses, changing nothing, what it must not run. */
async function preflight(rb: Migration): Promise<Found> {
  const p = rb.params;
  const [setup, before] = await Promise.all([
    aws.inspectMigrationSetup({
      aws: p.aws,
      cluster: p.cluster,
      taskDefinition: p.taskDefinition,
      container: p.container,
      vpc: p.vpc,
      subnetName: p.subnetName,
      securityGroup: p.securityGroup,
    }),
    aws.readSchemaMigrations({ db: { aws: p.aws, login: p.database } }),
  ]);
  const revision = `${p.taskDefinition}:${setup.revision}`;
  refuseIf(!setup.hasContainer || !setup.image, 'container', `${revision} has no container '${p.container}'`);
  refuseIf(!setup.log, 'container', `${p.container} of ${revision} does not log with awslogs: its migration output could not be followed`);
  refuseIf(!setup.log!.groupExists, 'container', `log group ${setup.log!.group} of ${revision} does not exist`);
  refuseIf(
    !setup.launchTypes.includes('FARGATE'),
    'taskDefinition',
    `${revision} is not compatible with Fargate (requires ${setup.launchTypes.join(', ') || 'nothing'})`,
  );
  refuseIf(
    p.expectedImageTag !== undefined && setup.imageTag !== p.expectedImageTag,
    'expectedImageTag',
    `${revision} runs ${setup.image}, not tag ${p.expectedImageTag}`,
  );
  refuseIf(!setup.vpcExists, 'vpc', `no VPC ${p.vpc}`);
  refuseIf(!setup.subnets.length, 'subnetName', `no subnet named ${p.subnetName} in ${p.vpc}`);
  const open = setup.subnets.filter((s) => s.public).map((s) => s.id);
  refuseIf(
    open.length > 0,
    'subnetName',
    `${open.join(', ')} named ${p.subnetName} route to the internet or assign public IPs; the migration runs in private subnets only`,
  );
  refuseIf(!setup.securityGroup, 'securityGroup', `no security group ${p.securityGroup}`);
  refuseIf(setup.securityGroup!.vpc !== p.vpc, 'securityGroup', `${p.securityGroup} is in ${setup.securityGroup!.vpc}, not in ${p.vpc}`);
  refuseIf(
    setup.runningMigrations.length > 0,
    'cluster',
    `a migration task is already running in ${p.cluster} (${setup.runningMigrations.join(', ')}); one at a time`,
  );
  const staging = await stagingRule(rb, setup.imageTag);
  return { ...setup, image: setup.image!, log: setup.log!, securityGroup: setup.securityGroup!, before, staging };
}

/** On a protected environment the same image must have migrated on staging first, unless waived with a reason. */
async function stagingRule(rb: Migration, imageTag: string | undefined): Promise<Found['staging']> {
  const p = rb.params;
  if (!p.stagingEnv) return null;
  if (!p.requireStagingRun) return { waived: p.stagingOverrideReason ?? '' };
  const found = imageTag ? await aws.findSucceededMigration({ env: p.stagingEnv, imageTag }) : null;
  refuseIf(
    !found,
    'requireStagingRun',
    `${rb.env} migrates an image only after it migrated on ${p.stagingEnv}: no succeeded ecs-migration run on ${p.stagingEnv} with image tag ${imageTag ?? '(none)'}` +
      ' (run it there first, or set requireStagingRun=false with a stagingOverrideReason)',
  );
  return found;
}

function preflightDetail(found: Found): string {
  const staging = !found.staging
    ? ''
    : 'waived' in found.staging
      ? `; staging rule waived: ${found.staging.waived}`
      : `; migrated on staging by ${found.staging.workflowId}`;
  return (
    `pinned ${found.taskDefinitionArn.split('/').at(-1)} (${found.image}); subnets ${found.subnets.map((s) => s.id).join(', ')}; ` +
    `schema_migration: ${found.before.count} rows, newest ${found.before.newest ?? 'none'}${staging}`
  );
}
