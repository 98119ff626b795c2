/**
 * `terraform-apply` end to end: the real CLI and worker, the real `terraform`
 * binary and, where the machine has its mirror, the real hashicorp/aws
 * provider creating buckets in the test stack's moto. The sandbox seeds the
 * Terraform directory (src/stack/sandbox/terraform.ts); each test plans in a
 * workspace of its own, made here the way an operator would make one.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { execa } from 'execa';
import type { RunStatus } from '../src/messages.js';
import { countByOperation, MotoRecorder } from '../src/stack/moto-recorder.js';
import { SANDBOX_DEPLOY_TOKEN, type SandboxTerraform } from '../src/stack/sandbox/terraform.js';
import { describeChanges, describeCounts, planCounts, planProblems } from '../src/terraform-plan.js';
import { sandbox, testStack } from './setup.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const idFor = (workspace: string) => `terraform-apply:sandbox:sandbox.${workspace}`;

describe('terraform-apply on the sandbox', function () {
  this.timeout(5 * 60_000);
  let s3: S3Client;
  let infra: Omit<SandboxTerraform, 'stop'>;
  /** aws_s3_bucket with the real provider, terraform_data for the stand-in. */
  let type: string;

  before(async () => {
    const seeded = sandbox().terraform;
    assert.ok(seeded, 'the sandbox seeded a Terraform directory (terraform is installed)');
    infra = seeded;
    type = infra.realProvider ? 'aws_s3_bucket' : 'terraform_data';
    if (!infra.realProvider)
      console.log(
        '      real provider not found (no hashicorp/aws mirror): terraform-apply runs on terraform_data stand-ins; no bucket is checked in moto',
      );
    s3 = new S3Client({
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await worker().start();
  });

  after(() => s3?.destroy());

  // --- Terraform and S3, as an operator reads them -------------------------------------------------

  async function tf(args: string[], workspace?: string, exitCodes = [0]): Promise<string> {
    const env = {
      ...(workspace ? { TF_WORKSPACE: workspace } : {}),
      ...(infra.config.cliConfig ? { TF_CLI_CONFIG_FILE: infra.config.cliConfig } : {}),
    };
    const result = await execa('terraform', args, { cwd: infra.config.dirs.sandbox, env, reject: false });
    assert.ok(
      exitCodes.includes(result.exitCode ?? -1),
      `terraform ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}${result.stdout.slice(-2000)}`,
    );
    return result.stdout;
  }

  /** A workspace of this test's own (a run never creates one). */
  async function newWorkspace(label: string): Promise<string> {
    const workspace = `t${process.pid}-${label}`;
    await tf(['workspace', 'new', '-no-color', workspace]);
    await tf(['workspace', 'select', '-no-color', 'default']);
    return workspace;
  }

  /** Every payload of the run's history (inputs, results, heartbeats, failures), decoded. */
  async function historyText(workflowId: string): Promise<string> {
    const history = await (await temporalClient()).workflow.getHandle(workflowId).fetchHistory();
    const decoded: string[] = [];
    // Walked by hand: the history's messages turn bytes into base64 when serialised to JSON.
    const walk = (node: unknown): void => {
      if (node instanceof Uint8Array) decoded.push(Buffer.from(node).toString('utf8'));
      else if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') Object.values(node).forEach(walk);
    };
    walk(history.events);
    return decoded.join('\n');
  }

  async function secretValue(secretId: string): Promise<string> {
    const client = new SecretsManagerClient({
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    try {
      return (await client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString!;
    } finally {
      client.destroy();
    }
  }

  /** `terraform state list`; a workspace nothing was applied in has no state file yet. */
  async function stateList(workspace: string): Promise<string[]> {
    const result = await execa('terraform', ['state', 'list'], {
      cwd: infra.config.dirs.sandbox,
      env: { TF_WORKSPACE: workspace },
      reject: false,
    });
    if (/No state file was found/.test(result.stderr)) return [];
    assert.equal(result.exitCode, 0, result.stderr);
    return result.stdout.split('\n').filter(Boolean);
  }

  /** PIDs of the processes whose command line names `file` (terraform applying that plan). */
  function processesRunning(file: string): number[] {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .flatMap((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(file) ? [Number(pid)] : [];
        } catch {
          return []; // ended meanwhile
        }
      });
  }

  /** Whether moto holds the bucket; with the stand-ins nothing is created there, so the state decides. */
  async function bucketExists(name: string): Promise<boolean> {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: name }));
      return true;
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw err;
    }
  }

  async function finalStatus(workflowId: string): Promise<RunStatus> {
    const { exitCode, json } = await runbookJson<RunStatus>(['status', workflowId]);
    assert.equal(exitCode, 0);
    return json;
  }

  const stepDetail = (status: RunStatus, step: string) => status.steps.find((s) => s.name === step)?.detail ?? '';
  const stepStates = (status: RunStatus, steps: string[]) => steps.map((name) => status.steps.find((s) => s.name === name)?.status);

  /** The saved plan named in the plan step's detail, and the hash the run recorded for it. */
  function savedPlan(status: RunStatus): { path: string; sha256: string } {
    const match = /saved as (\S+) \(sha256 ([0-9a-f]{64})\)/.exec(stepDetail(status, 'plan'));
    assert.ok(match, `the plan step names its file: ${stepDetail(status, 'plan')}`);
    return { path: match[1]!, sha256: match[2]! };
  }

  const start = (workspace: string, ...sets: string[]) =>
    runbook([
      'start',
      'terraform-apply',
      '--env',
      'sandbox',
      '--set',
      `workspace=${workspace}`,
      ...sets.flatMap((set) => ['--set', set]),
      '--wait',
    ]);

  // A test that fails half-way must not leave its run holding the workspace.
  let current: string | undefined;
  afterEach(async () => {
    if (!current) return;
    const handle = (await temporalClient()).workflow.getHandle(current);
    if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
    current = undefined;
  });

  it("plans into the run's folder, waits at review with counts, addresses and hash; approve applies exactly that plan, then deletes it", async () => {
    const workspace = await newWorkspace('approve');
    const id = (current = idFor(workspace));
    const started = await start(
      workspace,
      'vars.extra_buckets=["logs"]',
      `secretVars.deploy_token=${SANDBOX_DEPLOY_TOKEN.credential}`,
      'checkImage=sandbox-app:prod',
    );
    assert.equal(started.exitCode, 0, started.stdout + started.stderr);
    assert.match(started.stdout, /Waiting at checkpoint 'review'/);
    assert.match(stepDetail(await finalStatus(id), 'check-image'), /^sandbox-app:prod is sha256:[0-9a-f]{64}$/);

    const waiting = await finalStatus(id);
    const plan = savedPlan(waiting);
    const addresses = `create ${type}.assets, create ${type}.extra\\["logs"\\]`;
    assert.match(
      waiting.waitingFor?.prompt ?? '',
      new RegExp(
        `workspace ${workspace}: 2 to create, 0 to update, 0 to replace, 0 to destroy: ${addresses}\\. Plan sha256 ${plan.sha256}\\.`,
      ),
    );
    assert.equal(createHash('sha256').update(readFileSync(plan.path)).digest('hex'), plan.sha256, "the hash is the saved file's");
    assert.ok(!plan.path.startsWith(infra.config.dirs.sandbox), `the plan is kept outside the Terraform directory (${plan.path})`);
    assert.match(stepDetail(waiting, 'guard'), /^accepted: 2 to create/);
    assert.deepEqual(await stateList(workspace), [], 'nothing applied before the approval');
    if (infra.realProvider) assert.equal(await bucketExists(`sandbox-tf-${workspace}-assets`), false);

    const approve = await runbook(['approve', id, '--checkpoint', 'review', '--comment', 'two buckets, as expected']);
    assert.equal(approve.exitCode, 0, approve.stderr);
    const watched = await runbook(['watch', id]);
    assert.equal(watched.exitCode, 0, watched.stdout + watched.stderr);
    const status = await finalStatus(id);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    assert.deepEqual(
      stepStates(status, ['check-image', 'init', 'workspace', 'var-files', 'plan', 'guard', 'review', 'apply', 'clean-up']),
      ['done', 'done', 'done', 'skipped', 'done', 'done', 'done', 'done', 'done'],
    );
    const result = status.result as { tool: string; applied: boolean; sha256: string };
    assert.match(result.tool, /^(Terraform|OpenTofu) v\d+\.\d+/);
    assert.equal(result.sha256, plan.sha256);
    assert.deepEqual((await stateList(workspace)).sort(), [`${type}.assets`, `${type}.extra["logs"]`]);
    if (infra.realProvider) {
      assert.equal(await bucketExists(`sandbox-tf-${workspace}-assets`), true, 'Terraform created the bucket in moto');
      assert.equal(await bucketExists(`sandbox-tf-${workspace}-logs`), true);
    }
    assert.equal(existsSync(plan.path), false, 'the saved plan is deleted');
    // The secret reached Terraform (only its hash is an output), and never the history.
    const token = await secretValue(SANDBOX_DEPLOY_TOKEN.secretId);
    assert.equal((await tf(['output', '-raw', 'deploy_token_sha256'], workspace)).trim(), createHash('sha256').update(token).digest('hex'));
    // Payloads decoded, so a value in any input, result or heartbeat would show.
    const history = await historyText(id);
    assert.ok(!history.includes(token), 'the secret is not in the workflow history');
    assert.match(history, /secretsmanager:sandbox\/deploy-token/, 'only its reference is');
  });

  it('refuses before review, exit 2, a plan that would destroy what allow does not name (var file from s3://); nothing changes', async () => {
    const workspace = await newWorkspace('destroy');
    // What is there already: the workspace's buckets, one of them extra.
    await tf(['apply', '-auto-approve', '-input=false', '-no-color', '-var', 'extra_buckets=["old"]'], workspace);
    const stateBefore = await stateList(workspace);
    const varBucket = `tfvars-${process.pid}`;
    await s3.send(new CreateBucketCommand({ Bucket: varBucket }));
    await s3.send(
      new PutObjectCommand({ Bucket: varBucket, Key: 'sandbox/shrink.tfvars.json', Body: JSON.stringify({ extra_buckets: [] }) }),
    );

    const id = (current = idFor(workspace));
    const result = await start(workspace, `varFiles=["s3://${varBucket}/sandbox/shrink.tfvars.json"]`);
    assert.equal(result.exitCode, 2, result.stdout + result.stderr);
    const status = await finalStatus(id);
    assert.equal(status.errorType, 'InvalidInput');
    assert.match(
      status.error ?? '',
      new RegExp(
        `allow: the plan was refused before review, nothing applied: it would destroy ${type}\\.extra\\["old"\\], not only what allow lists \\(nothing\\)`,
      ),
    );
    assert.match(stepDetail(status, 'var-files'), /1 var files ready/);
    assert.deepEqual(stepStates(status, ['plan', 'guard', 'review', 'apply', 'clean-up']), [
      'done',
      'failed',
      'skipped',
      'skipped',
      'done',
    ]);
    assert.equal(existsSync(savedPlan(status).path), false, 'the refused plan is deleted');
    assert.deepEqual(await stateList(workspace), stateBefore, 'nothing applied');
    if (infra.realProvider) assert.equal(await bucketExists(`sandbox-tf-${workspace}-old`), true, 'the bucket is still there');
  });

  it('refuses a workspace that does not exist (never creating it), an image not published in ECR, and a directory not in the allowlist, with exit 2', async () => {
    const missing = `t${process.pid}-nope`;
    current = idFor(missing);
    const unknown = await start(missing);
    assert.equal(unknown.exitCode, 2, unknown.stdout + unknown.stderr);
    assert.match(
      unknown.stdout + unknown.stderr,
      new RegExp(`workspace: no workspace '${missing}' in .* \\(it has: .*staging.*\\); workspaces are never created by a run`),
    );
    assert.doesNotMatch(await tf(['workspace', 'list']), new RegExp(missing), 'the workspace was not created');

    // Seed 003: an image that was never pushed stops the run before Terraform runs at all.
    current = idFor('staging');
    const unpublished = await start('staging', 'checkImage=sandbox-app:never-pushed');
    assert.equal(unpublished.exitCode, 2, unpublished.stdout + unpublished.stderr);
    assert.match(unpublished.stdout + unpublished.stderr, /checkImage: sandbox-app:never-pushed is not published in ECR/);
    assert.deepEqual(stepStates(await finalStatus(idFor('staging')), ['init', 'plan']), ['skipped', 'skipped'], 'nothing ran');

    const otherDir = await runbook(['start', 'terraform-apply', '--env', 'sandbox', '--set', 'dir=elsewhere']);
    assert.equal(otherDir.exitCode, 2);
    assert.match(otherDir.stderr, /dir: 'elsewhere' is not a Terraform directory of sandbox \(allowed: sandbox(, [\w-]+)*\)/);
    const path = await runbook(['start', 'terraform-apply', '--env', 'sandbox', '--set', `dir=${infra.config.dirs.sandbox}`]);
    assert.equal(path.exitCode, 2);
    assert.match(path.stderr, /dir: must be the name of a Terraform directory/);
  });

  it('a rejection at review applies nothing and deletes the saved plan', async () => {
    const workspace = await newWorkspace('reject');
    const id = (current = idFor(workspace));
    const started = await start(workspace);
    assert.equal(started.exitCode, 0, started.stdout + started.stderr);
    const plan = savedPlan(await finalStatus(id));
    assert.equal(existsSync(plan.path), true);

    const reject = await runbook(['reject', id, '--checkpoint', 'review', '--reason', 'not today']);
    assert.equal(reject.exitCode, 0, reject.stderr);
    assert.equal((await runbook(['watch', id])).exitCode, 1, 'a rejected run exits 1');
    const status = await finalStatus(id);
    assert.equal(status.errorType, 'CheckpointRejected');
    assert.deepEqual(stepStates(status, ['review', 'apply', 'clean-up']), ['failed', 'skipped', 'done']);
    assert.equal(existsSync(plan.path), false, 'the saved plan is deleted');
    assert.deepEqual(await stateList(workspace), [], 'nothing applied');
    if (infra.realProvider) assert.equal(await bucketExists(`sandbox-tf-${workspace}-assets`), false);
  });

  it('after a SIGKILL of the worker during apply, its terraform stops too and a new worker finishes the run with the plan applied once', async function () {
    // Two workers' provider starts plus a retry after the heartbeat timeout: the slowest test here on a loaded machine.
    this.timeout(10 * 60_000);
    const workspace = await newWorkspace('crash');
    const id = (current = idFor(workspace));
    const started = await start(workspace);
    assert.equal(started.exitCode, 0, started.stdout + started.stderr);
    const plan = savedPlan(await finalStatus(id));
    // moto's own count of bucket creations, outside the worker (a killed worker's requests included).
    const recorder = new MotoRecorder(testStack().awsEndpoint);
    await recorder.start();
    assert.equal((await runbook(['approve', id, '--checkpoint', 'review'])).exitCode, 0);
    // Kill the worker while `terraform apply` holds the workspace's state lock. Its terraform gets
    // SIGINT from the kernel (parent-death signal) and stops cleanly: either it saved the applied
    // change (the next attempt finds its plan consumed, and the change in the state) or not (the
    // next attempt applies the plan, for the first time).
    const lock = join(infra.config.dirs.sandbox, 'terraform.tfstate.d', workspace, '.terraform.tfstate.lock.info');
    await waitUntil(() => existsSync(`${plan.path}.applying`) && existsSync(lock), {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'terraform apply to start',
    });
    const applying = processesRunning(plan.path);
    assert.ok(applying.length > 0, 'terraform apply runs as a process of its own');
    await worker().kill('SIGKILL');
    await waitUntil(() => processesRunning(plan.path).every((pid) => !applying.includes(pid)), {
      timeoutMs: 90_000,
      intervalMs: 100,
      what: "the killed worker's terraform to stop",
    });
    await worker().start();

    const status = await waitForStatus(id, (s) => s.phase !== 'running' && s.phase !== 'waiting', 180_000);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    const detail = stepDetail(status, 'apply');
    console.log(`      after the SIGKILL: ${detail}`);
    assert.match(
      detail,
      /^(applied: create aws_s3_bucket\.assets|applied: create terraform_data\.assets|the plan had been applied by an attempt whose result was lost)/,
    );
    // One apply activity, whose attempt on the new worker finished it (history records the last attempt).
    const events = (await (await temporalClient()).workflow.getHandle(id).fetchHistory()).events ?? [];
    const applies = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'terraformApply');
    assert.equal(applies.length, 1, 'the apply activity was scheduled once');
    const applyStarted = events.find((e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(applies[0]!.eventId));
    assert.ok((applyStarted?.activityTaskStartedEventAttributes?.attempt ?? 0) >= 2, 'the apply ran again on the new worker');
    assert.deepEqual(await stateList(workspace), [`${type}.assets`]);
    const created = countByOperation(await recorder.stop(), `sandbox-tf-${workspace}-assets`).PutBucket ?? 0;
    if (infra.realProvider) {
      assert.equal(await bucketExists(`sandbox-tf-${workspace}-assets`), true);
      assert.equal(created, 1, 'the bucket was created once: the plan was not applied twice');
    }
    assert.equal(existsSync(plan.path), false, 'the saved plan is deleted');
  });

  it('refuses a plan made stale by a change to the state after review, saying to run again', async () => {
    const workspace = await newWorkspace('stale');
    // States written without a provider (cheap): serial 1 before the plan, serial 2 by "someone else" after review.
    const pushState = async (serial: number) => {
      const file = join(testStack().dir, `${workspace}-${serial}.tfstate`);
      writeFileSync(
        file,
        JSON.stringify({
          version: 4,
          terraform_version: '1.5.0',
          serial,
          lineage: `stale-test-${process.pid}`,
          outputs: {},
          resources: [],
        }),
      );
      await tf(['state', 'push', file], workspace);
    };
    await pushState(1);
    const id = (current = idFor(workspace));
    const started = await start(workspace, 'vars.extra_buckets=["mine"]');
    assert.equal(started.exitCode, 0, started.stdout + started.stderr);
    await pushState(2);

    assert.equal((await runbook(['approve', id, '--checkpoint', 'review'])).exitCode, 0);
    const status = await waitForStatus(id, (s) => s.phase !== 'running' && s.phase !== 'waiting', 120_000);
    assert.equal(status.phase, 'failed');
    assert.match(
      status.error ?? '',
      new RegExp(`the plan is stale: the ${workspace} state changed since it was made, nothing applied; run again`),
    );
    assert.deepEqual(stepStates(status, ['apply', 'clean-up']), ['failed', 'done']);
    assert.ok(!(await stateList(workspace)).includes(`${type}.extra["mine"]`), 'the stale plan was not applied');
  });
});

describe('the plan guard', () => {
  const plan = {
    changes: [
      { address: 'aws_s3_bucket.assets', actions: ['create'] },
      { address: 'aws_s3_bucket.extra["a"]', actions: ['delete'] },
      { address: 'module.db.aws_db_instance.main', actions: ['delete', 'create'] },
      { address: 'aws_s3_bucket.logs', actions: ['update'] },
    ],
    outputs: {},
  };

  it('refuses destroys and replaces outside allow, accepts them inside', () => {
    assert.deepEqual(planProblems(plan, { allow: [] }), [
      'it would destroy aws_s3_bucket.extra["a"], replace module.db.aws_db_instance.main, not only what allow lists (nothing)',
    ]);
    assert.deepEqual(planProblems(plan, { allow: ['aws_s3_bucket.extra'] }), [
      'it would replace module.db.aws_db_instance.main, not only aws_s3_bucket.extra',
    ]);
    assert.deepEqual(planProblems(plan, { allow: ['aws_s3_bucket.extra["a"]', 'module.db'] }), []);
    assert.equal(planProblems(plan, { allow: ['aws_s3_bucket.ext'] }).length, 1, 'a prefix of a name is not the resource');
  });

  it('counts and names the changes as Terraform does', () => {
    assert.equal(describeCounts(planCounts(plan)), '1 to create, 1 to update, 1 to replace, 1 to destroy');
    assert.equal(
      describeChanges(plan),
      'create aws_s3_bucket.assets, destroy aws_s3_bucket.extra["a"], replace module.db.aws_db_instance.main, update aws_s3_bucket.logs',
    );
    assert.equal(describeChanges({ changes: [], outputs: {} }), 'no changes');
  });
});
