/**
 * `prod-tag-deploy` end to end: the real CLI and worker against the sandbox
 * (moto's ECR and ECS, the ECS simulator rolling the `web` service one task
 * at a time). The cases follow one release history, in order: a deploy, a
 * broken image undone, a deploy, a rollback and its freeze, a migration, a
 * refused rollback; each reads ECR, ECS and the target group as an operator would.
 */
import assert from 'node:assert/strict';
import { DescribeImagesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { DescribeTasksCommand, ECSClient, ListTasksCommand, type Task } from '@aws-sdk/client-ecs';
import {
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { RunStatus } from '../src/messages.js';
import { SANDBOX_COMMITS } from '../src/stack/sandbox/app-migrations.js';
import { DIGEST_TAG } from '../src/stack/sandbox/service-images.js';
import { withClient } from '../src/stack/sandbox/pg.js';
import { SIMULATOR_DEFAULTS } from '../src/stack/sandbox/ecs-simulator.js';
import type { ProdTagDeployResult } from '../src/workflows/prod-tag-deploy.js';
import { sandbox, testStack } from './setup.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const ID = 'prod-tag-deploy:sandbox:web';
const CLUSTER = 'sandbox';
const SERVICE = 'web';
const { plain, migrating } = SANDBOX_COMMITS;

interface WebTask {
  arn: string;
  digest: string | undefined;
  ip: string | undefined;
}

describe('prod-tag-deploy on the sandbox', function () {
  this.timeout(240_000);
  let ecs: ECSClient;
  let ecr: ECRClient;
  let elbv2: ElasticLoadBalancingV2Client;
  let targetGroupArn: string;
  const digest = (commit: string) => sandbox().deploys.digests[commit]!;

  before(async () => {
    const config = {
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    };
    ecs = new ECSClient(config);
    ecr = new ECRClient(config);
    elbv2 = new ElasticLoadBalancingV2Client(config);
    targetGroupArn = (await elbv2.send(new DescribeTargetGroupsCommand({ Names: [sandbox().deploys.targetGroup] }))).TargetGroups![0]!
      .TargetGroupArn!;
  });

  beforeEach(async () => {
    await sandbox().ecs.configure({ healthDelayMs: 1_000, failNewTasks: false, failNextTasks: 0 });
    await worker().start();
  });

  after(async () => {
    for (const client of [ecs, ecr, elbv2]) client?.destroy();
    await sandbox().ecs.configure(SIMULATOR_DEFAULTS);
  });

  // --- the sandbox as an operator sees it ------------------------------------------------------------

  async function webTasks(desiredStatus: 'RUNNING' | 'STOPPED' = 'RUNNING'): Promise<WebTask[]> {
    const { taskArns = [] } = await ecs.send(new ListTasksCommand({ cluster: CLUSTER, desiredStatus }));
    if (!taskArns.length) return [];
    const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: taskArns, include: ['TAGS'] }));
    return tasks.filter((t) => t.group === `service:${SERVICE}` && (desiredStatus === 'STOPPED' || t.lastStatus !== 'STOPPED')).map(view);
  }

  async function healthyIps(): Promise<Set<string>> {
    const { TargetHealthDescriptions = [] } = await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }));
    return new Set(TargetHealthDescriptions.filter((d) => d.TargetHealth?.State === 'healthy').map((d) => d.Target!.Id!));
  }

  async function prodDigest(): Promise<string> {
    const { imageDetails = [] } = await ecr.send(
      new DescribeImagesCommand({ repositoryName: 'sandbox-app', imageIds: [{ imageTag: 'prod' }] }),
    );
    return imageDetails[0]!.imageDigest!;
  }

  /** Waits until the service runs four serving tasks, all of `commit`'s image. */
  async function serving(commit: string): Promise<WebTask[]> {
    let seen: WebTask[] = [];
    await waitUntil(
      async () => {
        const [tasks, healthy] = await Promise.all([webTasks(), healthyIps()]);
        seen = tasks;
        return tasks.length === 4 && tasks.every((t) => t.digest === digest(commit) && t.ip && healthy.has(t.ip));
      },
      {
        timeoutMs: 30_000,
        what: () => `web to serve ${commit} on 4 tasks (last: ${JSON.stringify(seen.map((t) => t.digest?.slice(7, 15)))})`,
      },
    );
    return seen;
  }

  /** Samples serving and running task counts until stopped. */
  function sampleCapacity() {
    let stopped = false;
    let minServing = Number.POSITIVE_INFINITY;
    let maxRunning = 0;
    const sampling = (async () => {
      while (!stopped) {
        // Tasks first, then target health: read the other way round (or at once), a sample can pair the targets from
        // before a new task registered with the tasks from after the old one stopped, and count one serving task short.
        const tasks = await webTasks();
        const healthy = await healthyIps();
        minServing = Math.min(minServing, tasks.filter((t) => t.ip && healthy.has(t.ip)).length);
        maxRunning = Math.max(maxRunning, tasks.length);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    return { stop: async () => ((stopped = true), await sampling, { minServing, maxRunning }) };
  }

  async function status(): Promise<RunStatus> {
    return (await runbookJson<RunStatus>(['status', ID])).json;
  }

  async function deploy(args: string[]) {
    return runbook(['start', 'prod-tag-deploy', '--env', 'sandbox', ...args, '--wait']);
  }

  async function rollbackApproved(commit: string): Promise<RunStatus> {
    const start = await deploy(['--set', 'mode=rollback', '--set', `commit=${commit}`]);
    assert.equal(start.exitCode, 0, start.stdout + start.stderr);
    await waitForStatus(ID, (s) => s.waitingFor?.checkpoint === 'rollback');
    const approved = await runbook(['approve', ID, '--checkpoint', 'rollback'], { as: 'release-manager' });
    assert.equal(approved.exitCode, 0, approved.stdout + approved.stderr);
    return waitForStatus(ID, (s) => s.phase !== 'running' && s.phase !== 'waiting', 120_000);
  }

  // --- the tests -----------------------------------------------------------------------------------

  it('`runbook describe` lists its steps and checkpoints', async () => {
    const { exitCode, stdout } = await runbook(['describe', 'prod-tag-deploy', '--env', 'sandbox']);
    assert.equal(exitCode, 0, stdout);
    const steps = [...stdout.matchAll(/^\s+\d+\. (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(steps, ['preflight', 'deploy', 'rollback', 'retag', 'redeploy', 'watch-canary', 'read-schema', 'set-freeze']);
  });

  it('deploy moves prod and replaces all 4 tasks one at a time, never below 4 serving', async () => {
    await serving(SANDBOX_COMMITS.current);
    const capacity = sampleCapacity();
    const run = await deploy([]);
    const { minServing, maxRunning } = await capacity.stop();
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    const s = await status();
    assert.equal(s.phase, 'succeeded', s.error ?? '');
    assert.equal(await prodDigest(), digest(plain));
    const tasks = await serving(plain);
    const result = s.result as ProdTagDeployResult;
    assert.deepEqual([...result.newTaskArns].sort(), tasks.map((t) => t.arn).sort());
    assert.ok(minServing >= 4, `serving dropped to ${minServing}`);
    assert.ok(maxRunning <= 5, `${maxRunning} tasks ran at once: more than one new task at a time`);
    assert.ok(result.minHealthy >= 4);
    assert.equal(result.previous.commit, SANDBOX_COMMITS.current);
    console.log(`      (lowest serving ${minServing}, most running ${maxRunning})`);
  });

  it('a bad image stops at the first new task and is undone: no old task replaced, prod tag back', async () => {
    const stoppedBefore = new Set((await webTasks('STOPPED')).map((t) => t.arn));
    const before = (await serving(plain)).map((t) => t.arn).sort();
    await sandbox().deploys.images.markBad(digest(migrating));
    try {
      const capacity = sampleCapacity();
      const run = await deploy(['--set', `commit=${migrating}`]);
      const { minServing, maxRunning } = await capacity.stop();
      assert.equal(run.exitCode, 1, run.stdout + run.stderr);
      const s = await status();
      assert.equal(s.phase, 'rolled-back', s.error ?? '');
      assert.match(s.error ?? '', /new tasks running sha256:\S+ failed .*failed ELB health checks/);
      assert.equal(await prodDigest(), digest(plain));
      assert.deepEqual(
        (await serving(plain)).map((t) => t.arn).sort(),
        before,
        'the deployment never got past its first slot: every old task still serves',
      );
      assert.ok(minServing >= 4 && maxRunning <= 5, `serving ${minServing}..., running at most ${maxRunning}`);
      // ECS (circuit breaker off) retries the slot until the tag moves back; each try failed and none served.
      // A task the slot started once the tag was back (old image, surplus) may be stopped too; an old task never.
      const stoppedNow = (await webTasks('STOPPED')).filter((t) => !stoppedBefore.has(t.arn));
      assert.ok(
        stoppedNow.some((t) => t.digest === digest(migrating)),
        `a new-image task was tried and stopped: ${JSON.stringify(stoppedNow)}`,
      );
      assert.deepEqual(
        stoppedNow.filter((t) => before.includes(t.arn)),
        [],
        'no task that served before the deploy was stopped',
      );
    } finally {
      await sandbox().deploys.images.markBad(digest(migrating), false);
    }
  });

  it('rollback after a deploy without migration succeeds and freezes deploys', async () => {
    const forward = await deploy(['--set', `commit=${migrating}`]);
    assert.equal(forward.exitCode, 0, forward.stdout + forward.stderr);
    await serving(migrating);

    const s = await rollbackApproved(plain);
    assert.equal(s.phase, 'succeeded', s.error ?? '');
    assert.equal(await prodDigest(), digest(plain));
    await serving(plain);
    const result = s.result as ProdTagDeployResult;
    assert.equal(result.freeze?.badCommit, migrating);
    assert.match(JSON.stringify(result.basis), /prod-tag-deploy:sandbox:web/);
    assert.equal(s.decisions[0]?.by, 'release-manager');
  });

  it('a deploy during the freeze without fixesCommit is refused; naming the fix passes and lifts it', async () => {
    const refused = await deploy(['--set', `commit=${migrating}`]);
    assert.equal(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(
      refused.stdout + refused.stderr,
      new RegExp(`fixesCommit: deploys of web on sandbox are frozen since \\S+ \\(${ID} rolled back ${migrating}\\)`),
    );
    assert.equal(await prodDigest(), digest(plain), 'nothing changed');
    await waitClosed(ID);

    const fixed = await deploy(['--set', `commit=${migrating}`, '--set', `fixesCommit=${migrating}`]);
    assert.equal(fixed.exitCode, 0, fixed.stdout + fixed.stderr);
    await serving(migrating);
  });

  it('rollback after a migration ran since the target was prod is refused with exit 2 naming the migrations', async () => {
    const version = `20250301000000_prod_deploy_test_${Date.now()}`;
    await sandbox().migrations.catalog.add(migrating, { version, sql: 'CREATE TABLE deploy_test_marker (id int)' });
    const migration = await runbook(['start', 'ecs-migration', '--env', 'sandbox', '--wait']);
    assert.equal(migration.exitCode, 0, migration.stdout + migration.stderr);

    const refused = await deploy(['--set', 'mode=rollback', '--set', `commit=${plain}`]);
    assert.equal(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(refused.stdout + refused.stderr, new RegExp(`commit: \\d+ migration\\(s\\) ran since ${plain} was prod .*${version}`));
    assert.equal(await prodDigest(), digest(migrating), 'nothing changed');
    const rows = await withClient(sandbox().regions.databaseUrl, (db) =>
      db.query('SELECT 1 FROM schema_migration WHERE version = $1', [version]),
    );
    assert.equal(rows.rowCount, 1);
  });

  it('a second runbook on the same service is refused, naming the run that holds it', async () => {
    await waitClosed(ID);
    // A restart of web that is still waiting for its new tasks holds the service.
    await sandbox().ecs.configure({ healthDelayMs: 120_000 });
    const restart = await runbook([
      'start',
      'rolling-restart',
      '--env',
      'sandbox',
      '--set',
      'service=web',
      '--set',
      `targetGroup=${sandbox().deploys.targetGroup}`,
    ]);
    assert.equal(restart.exitCode, 0, restart.stdout + restart.stderr);
    try {
      const refused = await deploy(['--set', `commit=${plain}`]);
      assert.equal(refused.exitCode, 3, refused.stdout + refused.stderr);
      assert.match(
        refused.stdout + refused.stderr,
        /service: web is held by rolling-restart:sandbox:web: one runbook at a time per service/,
      );
      assert.equal(await prodDigest(), digest(migrating), 'nothing changed');
    } finally {
      await runbook(['cancel', 'rolling-restart:sandbox:web', '--wait']);
      await sandbox().ecs.configure({ healthDelayMs: 1_000 });
    }
  });

  it('a failed canary after the schema changed is not undone: the run ends failed, saying to roll forward', async () => {
    await waitClosed('rolling-restart:sandbox:web');
    await serving(migrating);
    // A broken release whose app migrates at boot: its first task changes the schema, then fails.
    const version = `20250401000000_boot_migration_${Date.now()}`;
    await sandbox().migrations.catalog.add(plain, { version, sql: 'CREATE TABLE boot_migration_marker (id int)' });
    await sandbox().deploys.images.markBad(digest(plain));
    await sandbox().deploys.images.migrateOnStart(digest(plain));
    try {
      const run = await deploy(['--set', `commit=${plain}`]);
      assert.equal(run.exitCode, 1, run.stdout + run.stderr);
      const s = await status();
      assert.equal(s.phase, 'failed');
      assert.match(
        s.error ?? '',
        new RegExp(
          `nothing undone: schema_migration changed during the deploy \\(${version}\\), so ${migrating} may not fit it: roll forward with a fixed commit`,
        ),
      );
      assert.ok(
        s.steps.every((step) => step.status !== 'compensated'),
        'nothing was undone',
      );
      assert.equal(await prodDigest(), digest(plain), 'the tag stays where the deploy put it');
    } finally {
      await sandbox().deploys.images.markBad(digest(plain), false);
      await sandbox().deploys.images.migrateOnStart(digest(plain), false);
      await sandbox().migrations.catalog.remove(plain, version);
    }
    // Rolling forward: once the image is fixed, ECS finishes the deployment it kept retrying.
    await serving(plain);
  });
});

async function waitClosed(workflowId: string): Promise<void> {
  const handle = (await temporalClient()).workflow.getHandle(workflowId);
  await waitUntil(async () => (await handle.describe().catch(() => undefined))?.status.name !== 'RUNNING', {
    timeoutMs: 10_000,
    what: `${workflowId} to close`,
  });
}

function view(task: Task): WebTask {
  return {
    arn: task.taskArn!,
    digest: task.tags?.find((t) => t.key === DIGEST_TAG)?.value,
    ip: task.attachments?.[0]?.details?.find((d) => d.name === 'privateIPv4Address')?.value,
  };
}
