/**
 * `bucket-swap` end to end: the real CLI and worker against the sandbox's moto
 * and, in Terraform mode, the real `terraform` binary on a fixture
 * configuration. Every check reads S3 (or Terraform) the way an operator
 * would; copy requests are counted by moto's own recorder, outside the worker
 * that the crash test kills.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetBucketEncryptionCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectTaggingCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { defaultPayloadConverter } from '@temporalio/common';
import { execa } from 'execa';
import pLimit from 'p-limit';
import type { CopyCheckpoint } from '../src/activities/s3-copy.js';
import type { RunStatus } from '../src/messages.js';
import { MotoRecorder, s3Request } from '../src/stack/moto-recorder.js';
import { findProviderMirror, motoProviderConfig, writeCliConfig } from '../src/stack/terraform.js';
import { testStack } from './setup.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const fixtureTerraformDir = fileURLToPath(new URL('../../test/fixtures/terraform/', import.meta.url));
const realFixtureTerraformDir = fileURLToPath(new URL('../../test/fixtures/terraform-aws/', import.meta.url));
const unique = (label: string) => `${label}-${process.pid}`;
const idFor = (source: string) => `bucket-swap:sandbox:${source}`;

/** Parts of 5 MiB (moto's minimum, as S3's) above 8 MiB, so one 12 MiB object is copied in 3 parts. */
const SMALL_PARTS = ['--set', 'multipartThreshold=8MiB', '--set', 'partSize=5MiB'];
const LARGE_OBJECT_SIZE = 12 * 2 ** 20;
const LARGE_OBJECT_PARTS = 3;

interface Listed {
  key: string;
  size: number;
  etag: string;
}

describe('bucket-swap on the sandbox', function () {
  this.timeout(5 * 60_000);
  let s3: S3Client;

  before(() => {
    s3 = new S3Client({ endpoint: testStack().awsEndpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    mkdirSync(gatesDir(), { recursive: true });
  });

  after(() => s3?.destroy());

  // --- reading and writing S3 as an operator would -------------------------------------------------

  async function listAll(bucket: string): Promise<Listed[]> {
    const all: Listed[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      all.push(...(page.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size!, etag: o.ETag! })));
      token = page.NextContinuationToken;
    } while (token);
    return all;
  }

  async function bucketExists(bucket: string): Promise<boolean> {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      return true;
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw err;
    }
  }

  async function bucketNames(): Promise<string[]> {
    return ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name!).sort();
  }

  /** A bucket with settings to carry over and `objects` objects, written a few at a time (moto serves ~150-300 requests/s). */
  async function createSourceBucket(bucket: string, objects: (Omit<PutObjectCommandInput, 'Bucket'> & { Key: string })[]): Promise<void> {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] } }));
    await s3.send(new PutPublicAccessBlockCommand({ Bucket: bucket, PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true } }));
    await s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [{ Key: 'owner', Value: 'tests' }] } }));
    const limit = pLimit(16);
    await Promise.all(objects.map((object) => limit(() => s3.send(new PutObjectCommand({ Bucket: bucket, ...object })))));
  }

  /** Every key, size and ETag of `copy` matches `source`; the large object is a 3-part copy. */
  async function assertExactCopy(source: string, copy: string): Promise<Listed[]> {
    const [expected, actual] = await Promise.all([listAll(source), listAll(copy)]);
    assert.deepEqual(actual.map((o) => o.key), expected.map((o) => o.key), 'the same keys, in the same order');
    for (const [i, original] of expected.entries()) {
      const copied = actual[i]!;
      assert.equal(copied.size, original.size, `size of ${original.key}`);
      if (original.size > 8 * 2 ** 20) assert.match(copied.etag, new RegExp(`-${LARGE_OBJECT_PARTS}"$`), `${original.key} copied in ${LARGE_OBJECT_PARTS} parts`);
      else assert.equal(copied.etag, original.etag, `ETag of ${original.key}`);
    }
    return expected;
  }

  /** Content type, user metadata and tags of some objects (every zero-byte one, tagged ones, the large one) equal the source's. */
  async function assertObjectDetailsKept(source: string, copy: string, keys: string[]): Promise<void> {
    for (const key of keys) {
      const [a, b] = await Promise.all([source, copy].map((Bucket) => s3.send(new HeadObjectCommand({ Bucket, Key: key }))));
      const [ta, tb] = await Promise.all([source, copy].map((Bucket) => s3.send(new GetObjectTaggingCommand({ Bucket, Key: key }))));
      assert.equal(b!.ContentType, a!.ContentType, `content type of ${key}`);
      assert.deepEqual(b!.Metadata, a!.Metadata, `metadata of ${key}`);
      assert.deepEqual(tb!.TagSet, ta!.TagSet, `tags of ${key}`);
    }
  }

  /** The settings a new bucket copies: versioning, default encryption, public access block, tags. */
  async function assertSettingsCopied(source: string, copy: string): Promise<void> {
    const read = (Bucket: string) =>
      Promise.all([
        s3.send(new GetBucketVersioningCommand({ Bucket })).then((r) => r.Status),
        s3.send(new GetBucketEncryptionCommand({ Bucket })).then((r) => r.ServerSideEncryptionConfiguration?.Rules?.map((rule) => rule.ApplyServerSideEncryptionByDefault?.SSEAlgorithm)),
        s3.send(new GetPublicAccessBlockCommand({ Bucket })).then((r) => r.PublicAccessBlockConfiguration),
        s3.send(new GetBucketTaggingCommand({ Bucket })).then((r) => r.TagSet),
      ]);
    assert.deepEqual(await read(copy), await read(source));
  }

  // --- reading the run -----------------------------------------------------------------------------

  /** The copy's checkpoint as the Temporal server holds it (the last heartbeat it received). */
  async function copyCheckpoint(workflowId: string): Promise<CopyCheckpoint | undefined> {
    const description = await (await temporalClient()).workflow.getHandle(workflowId).describe();
    const copy = description.raw.pendingActivities?.find((a) => a.activityType?.name === 'copyBucketObjects');
    const payload = copy?.heartbeatDetails?.payloads?.[0];
    return payload ? defaultPayloadConverter.fromPayload<CopyCheckpoint>(payload) : undefined;
  }

  async function finalStatus(workflowId: string): Promise<RunStatus> {
    const { exitCode, json } = await runbookJson<RunStatus>(['status', workflowId]);
    assert.equal(exitCode, 0);
    return json;
  }

  const stepDetail = (status: RunStatus, step: string) => status.steps.find((s) => s.name === step)?.detail ?? '';
  const stepStates = (status: RunStatus) => Object.fromEntries(status.steps.map((s) => [s.name, s.status]));

  function gatesDir(): string {
    return testStack().env.RUNBOOK_TEST_GATES_DIR!;
  }

  describe('a bucket of 2,001 objects', () => {
    const source = unique('swap-e2e');
    const LARGE_KEY = 'e2e/large/blob.bin';
    /** Zero-byte, tagged and nested objects whose details the copy must keep, and the large one. */
    const sampleKeys = ['e2e/folder-marker/', 'e2e/a/0/obj-0.txt', 'e2e/j/9/obj-1999.txt', 'e2e/special/ü ñ + % & =.txt', LARGE_KEY];

    // A test that fails half-way must not leave its run holding the bucket for the next one.
    afterEach(async () => {
      const handle = (await temporalClient()).workflow.getHandle(idFor(source));
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
    });

    before(async function () {
      this.timeout(120_000);
      await worker().start();
      const contentTypes = ['text/plain', 'application/json', 'image/png', 'text/csv'];
      const objects = Array.from({ length: 1997 }, (_, i) => ({
        Key: `e2e/${'abcdefghij'[i % 10]}/${Math.floor(i / 10) % 10}/obj-${i}.txt`,
        Body: i % 50 === 0 ? Buffer.alloc(0) : `object ${i}\n`.repeat((i % 7) + 1),
        ContentType: contentTypes[i % contentTypes.length],
        Metadata: { seq: String(i) },
        ...(i % 10 === 0 ? { Tagging: `kind=tenth&seq=${i}` } : {}),
      }));
      objects.push(
        { Key: 'e2e/folder-marker/', Body: Buffer.alloc(0), ContentType: 'application/x-directory', Metadata: { seq: 'marker' } },
        { Key: 'e2e/special/ü ñ + % & =.txt', Body: 'odd key\n', ContentType: 'text/plain; charset=utf-8', Metadata: { seq: 'special' }, Tagging: 'odd=yes' },
        { Key: 'e2e/j/9/obj-1999.txt', Body: 'last\n', ContentType: 'text/plain', Metadata: { seq: '1999' }, Tagging: 'kind=last' },
        { Key: LARGE_KEY, Body: Buffer.alloc(LARGE_OBJECT_SIZE, 7), ContentType: 'application/octet-stream', Metadata: { seq: 'large' }, Tagging: 'size=large' },
      );
      await createSourceBucket(source, objects);
      // Older versions too: deleting the old bucket must remove every version.
      await s3.send(new PutObjectCommand({ Bucket: source, Key: 'e2e/a/0/obj-0.txt', Body: Buffer.alloc(0), ContentType: 'text/plain', Metadata: { seq: '0' }, Tagging: 'kind=tenth&seq=0' }));
      assert.equal((await listAll(source)).length, 2001);
    });

    it('after a SIGKILL mid-copy, resumes from the checkpoint (copy requests < 1.5x objects), copies every object exactly; a rejection keeps both buckets', async function () {
      this.timeout(240_000);
      const target = unique('swap-crash');
      const id = idFor(source);
      const recorder = new MotoRecorder(testStack().awsEndpoint);
      await recorder.start();
      // The copy holds after its first page, until the server has that checkpoint (heartbeats reach it every 8 s at most).
      const gate = join(gatesDir(), `copy-after-page-1.${target}`);
      writeFileSync(`${gate}.hold`, '');
      const started = await runbook(['start', 'bucket-swap', '--env', 'sandbox', '--set', `source=${source}`, '--set', `target=${target}`, ...SMALL_PARTS]);
      assert.equal(started.exitCode, 0, started.stderr);

      await waitUntil(() => existsSync(`${gate}.reached`), { timeoutMs: 60_000, what: 'the copy to finish its first page' });
      let checkpoint: CopyCheckpoint | undefined;
      await waitUntil(async () => {
        checkpoint = await copyCheckpoint(id);
        return (checkpoint?.pages ?? 0) >= 1;
      }, { timeoutMs: 30_000, what: () => `the server to hold the copy's checkpoint (last: ${JSON.stringify(checkpoint)})` });
      await worker().kill('SIGKILL');
      const copiedAtKill = (await listAll(target)).length;
      assert.ok(copiedAtKill < 2001, `killed mid-copy (${copiedAtKill} objects copied)`);
      writeFileSync(`${gate}.open`, '');
      await worker().start();

      const waiting = await waitForStatus(id, (s) => s.phase === 'waiting' || s.phase === 'failed', 150_000);
      const requests = await recorder.stop();
      assert.equal(waiting.phase, 'waiting', waiting.error ?? '');
      const copyRequests = requests.map(s3Request).filter((r) => r.bucket === target && (r.operation === 'CopyObject' || r.operation === 'UploadPartCopy'));
      const objects = 2001;
      console.log(`      copy requests after the SIGKILL: ${copyRequests.length} for ${objects} objects (at the kill: ${copiedAtKill} copied, checkpoint at ${checkpoint!.objects}); ${stepDetail(waiting, 'copy-objects')}`);
      assert.ok(copyRequests.length < 1.5 * objects, `${copyRequests.length} copy requests for ${objects} objects`);
      assert.match(stepDetail(waiting, 'copy-objects'), /resumed at attempt [2-9]/);
      await assertExactCopy(source, target);
      await assertObjectDetailsKept(source, target, sampleKeys);

      const reject = await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'crash test: keep both']);
      assert.equal(reject.exitCode, 0, reject.stderr);
      const watched = await runbook(['watch', id]);
      assert.equal(watched.exitCode, 1, 'a rejected run exits 1');
      const status = await finalStatus(id);
      assert.equal(status.phase, 'failed');
      assert.equal(status.errorType, 'CheckpointRejected');
      assert.match(status.error ?? '', /rejected by tester: crash test: keep both\. Nothing was deleted: both buckets are kept/);
      assert.equal(stepStates(status)['delete-old-bucket'], 'skipped');
      assert.equal((await listAll(source)).length, objects, 'the old bucket is untouched');
      assert.equal((await listAll(target)).length, objects, 'the new bucket is kept');
    });

    it('copies, verifies and, after `runbook approve`, deletes the old bucket with every version', async function () {
      this.timeout(240_000);
      const target = unique('swap-e2e-new');
      const id = idFor(source);
      const result = await runbook(['start', 'bucket-swap', '--env', 'sandbox', '--set', `source=${source}`, '--set', `target=${target}`, ...SMALL_PARTS, '--wait']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, /Waiting at checkpoint 'delete-old'/);

      const waiting = await finalStatus(id);
      assert.match(waiting.waitingFor?.prompt ?? '', /verified copy of all 2,001 objects \(\d+(\.\d+)? MiB\) of s3:\/\/swap-e2e-\d+: keys, sizes and ETags match \(1 multipart copy by size and part count\)/);
      assert.match(stepDetail(waiting, 'copy-objects'), /2,001 objects .*: 2,000 copied whole, 1 in parts/);
      assert.deepEqual(
        ['detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan'].map((step) => stepStates(waiting)[step]),
        ['skipped', 'skipped', 'skipped', 'skipped'],
        'mode aws skips the Terraform steps',
      );
      assert.equal(await bucketExists(source), true, 'nothing deleted before approval');
      await assertExactCopy(source, target);
      await assertObjectDetailsKept(source, target, sampleKeys);
      await assertSettingsCopied(source, target);

      const approve = await runbook(['approve', id, '--checkpoint', 'delete-old', '--comment', 'counts match']);
      assert.equal(approve.exitCode, 0, approve.stderr);
      const watched = await runbook(['watch', id]);
      assert.equal(watched.exitCode, 0, watched.stdout + watched.stderr);
      const status = await finalStatus(id);
      assert.equal(status.phase, 'succeeded');
      assert.match(stepDetail(status, 'delete-old-bucket'), /deleted 2,002 object versions, then the bucket/);
      assert.equal(await bucketExists(source), false, 'the old bucket is gone');
      assert.equal((await listAll(target)).length, 2001);

      const history = await (await temporalClient()).workflow.getHandle(id).fetchHistory();
      const events = history.events?.length ?? 0;
      console.log(`      history of the 2,001-object run: ${events} events`);
      assert.ok(events < 120, `the history grows with steps, not objects (${events} events)`);
    });
  });

  it('a dry run reads the buckets and records what it would do, changing nothing', async () => {
    await worker().start();
    const bucketsBefore = await bucketNames();
    // The sandbox's own defaults: sandbox-uploads -> sandbox-uploads-v2, mode aws.
    const result = await runbook(['start', 'bucket-swap', '--env', 'sandbox', '--dry-run', '--wait']);
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
    const status = await finalStatus(idFor('sandbox-uploads'));
    assert.equal(status.phase, 'succeeded');
    assert.equal(stepStates(status).preflight, 'done');
    assert.match(stepDetail(status, 'preflight'), /s3:\/\/sandbox-uploads in us-east-1 \(versioning enabled, encryption AES256, public access blocked, 2 tags\); s3:\/\/sandbox-uploads-v2 does not exist yet/);
    for (const step of ['create-bucket', 'copy-objects', 'verify', 'delete-old', 'delete-old-bucket']) assert.match(stepDetail(status, step), /^would /, step);
    assert.deepEqual(await bucketNames(), bucketsBefore);
  });

  it('an object changed or removed in the new bucket before verification: nothing deleted, the run fails naming them', async function () {
    this.timeout(120_000);
    await worker().start();
    const gate = join(gatesDir(), 'before-verify.sandbox-uploads-v2');
    writeFileSync(`${gate}.hold`, '');
    const before = await listAll('sandbox-uploads');
    const started = await runbook(['start', 'bucket-swap', '--env', 'sandbox']);
    assert.equal(started.exitCode, 0, started.stderr);

    await waitUntil(() => existsSync(`${gate}.reached`), { timeoutMs: 60_000, what: 'the run to reach verification' });
    await s3.send(new DeleteObjectCommand({ Bucket: 'sandbox-uploads-v2', Key: 'assets/css/site.css' }));
    await s3.send(new PutObjectCommand({ Bucket: 'sandbox-uploads-v2', Key: 'reports/2024/q1.csv', Body: 'tampered\n', ContentType: 'text/csv' }));
    writeFileSync(`${gate}.open`, '');

    const watched = await runbook(['watch', idFor('sandbox-uploads')]);
    assert.equal(watched.exitCode, 1);
    const status = await finalStatus(idFor('sandbox-uploads'));
    assert.equal(status.phase, 'failed');
    assert.match(status.error ?? '', /not an exact copy of s3:\/\/sandbox-uploads: 2 of \d+ objects .* differ: 'assets\/css\/site.css' missing in the copy; 'reports\/2024\/q1.csv' (ETag|size)/);
    assert.match(status.error ?? '', /Nothing was deleted: s3:\/\/sandbox-uploads is untouched/);
    assert.deepEqual([stepStates(status).verify, stepStates(status)['delete-old'], stepStates(status)['delete-old-bucket']], ['failed', 'skipped', 'skipped']);
    assert.deepEqual(await listAll('sandbox-uploads'), before, 'the old bucket is untouched');
  });

  it('a delete-old checkpoint that times out deletes nothing and says both buckets are kept', async () => {
    await worker().start();
    const source = unique('timeout-old');
    const target = unique('timeout-new');
    await createSourceBucket(source, [{ Key: 'kept.txt', Body: 'kept', ContentType: 'text/plain' }]);
    // The `hasty` environment's delete-old checkpoint times out after 2 s.
    const result = await runbook(['start', 'bucket-swap', '--env', 'hasty', '--set', `source=${source}`, '--set', `target=${target}`]);
    assert.equal(result.exitCode, 0, result.stderr);
    const id = `bucket-swap:hasty:${source}`;
    const status = await waitForStatus(id, (s) => s.phase !== 'running' && s.phase !== 'waiting', 30_000);
    assert.equal(status.phase, 'failed');
    assert.deepEqual(status.decisions.map((d) => [d.decision, d.by]), [['rejected', 'timeout']]);
    assert.match(status.error ?? '', /checkpoint 'delete-old' timed out \(no decision within 2s\)\. Nothing was deleted: both buckets are kept/);
    assert.deepEqual((await listAll(source)).map((o) => o.key), ['kept.txt']);
    assert.deepEqual((await listAll(target)).map((o) => o.key), ['kept.txt']);
  });

  describe('terraform mode, with the real terraform binary', () => {
    /** The real hashicorp/aws provider from the machine's mirror; without one, the terraform_data stand-in fixture. */
    const mirror = findProviderMirror();
    const address = mirror ? 'aws_s3_bucket.static' : 'terraform_data.static';
    let cliConfig: string | undefined;

    before(async () => {
      if (!mirror) console.log('      real provider not found (no hashicorp/aws mirror): terraform mode runs on the terraform_data stand-in fixture, creating no bucket through Terraform');
      cliConfig = mirror ? await writeCliConfig(join(testStack().dir, 'bucket-swap-terraform.rc'), mirror) : undefined;
      await worker().start();
    });

    /**
     * A copy of the fixture configuration whose state (workspace `sandbox`)
     * holds the old bucket, holding 30 objects; with the real provider,
     * Terraform created that bucket in moto.
     */
    async function terraformDirHolding(oldBucket: string): Promise<string> {
      const dir = mkdtempSync(join(testStack().dir, 'terraform-'));
      cpSync(mirror ? realFixtureTerraformDir : fixtureTerraformDir, dir, { recursive: true });
      if (mirror) writeFileSync(join(dir, 'provider.tf'), motoProviderConfig({ endpoint: testStack().awsEndpoint, region: 'us-east-1' }));
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${oldBucket}"\n`);
      await tf(dir, ['init', '-input=false', '-no-color']);
      await tf(dir, ['workspace', 'new', 'sandbox']);
      await tf(dir, ['apply', '-auto-approve', '-input=false', '-no-color'], 'sandbox');
      const files = Array.from({ length: 30 }, (_, i) => ({ Key: `static/file-${i}.css`, Body: `a { order: ${i} }\n`, ContentType: 'text/css' }));
      if (mirror) await Promise.all(files.map((file) => s3.send(new PutObjectCommand({ Bucket: oldBucket, ...file }))));
      else await createSourceBucket(oldBucket, files);
      return dir;
    }

    async function tf(dir: string, args: string[], workspace?: string, exitCodes = [0]): Promise<string> {
      const env = { ...(workspace ? { TF_WORKSPACE: workspace } : {}), ...(cliConfig ? { TF_CLI_CONFIG_FILE: cliConfig } : {}) };
      const result = await execa('terraform', args, { cwd: dir, env, reject: false });
      assert.ok(exitCodes.includes(result.exitCode ?? -1), `terraform ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}${result.stdout.slice(-2000)}`);
      return result.stdout;
    }

    /** The run's plan files are gone: none in the Terraform directory, none left in the worker's run folders. */
    function assertNoPlanLeft(dir: string, workflowId: string): void {
      assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tfplan')), [], 'no plan in the Terraform directory');
      const runs = join(tmpdir(), 'runbook-terraform', workflowId.replace(/[^A-Za-z0-9._-]/g, '_'));
      const left = existsSync(runs) ? readdirSync(runs).flatMap((run) => readdirSync(join(runs, run))) : [];
      assert.deepEqual(left, [], 'the saved plan was deleted');
    }

    const swapWithTerraform = (source: string, target: string, dir: string) => [
      'start', 'bucket-swap', '--env', 'sandbox', '--set', `source=${source}`, '--set', `target=${target}`, '--set', 'mode=terraform',
      '--set', `terraform.dir=${dir}`, '--set', 'terraform.workspace=sandbox', '--set', `terraform.address=${address}`, '--wait',
    ];

    it('refuses, before apply, a plan that would replace something besides the bucket', async () => {
      const source = unique('tf-guard-old');
      const target = unique('tf-guard-new');
      const dir = await terraformDirHolding(source);
      const keyBefore = await tf(dir, ['state', 'show', '-no-color', 'terraform_data.encryption_key'], 'sandbox');
      // The operator renames the bucket, and (by mistake) bumps the key it depends on.
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${target}"\nkey_generation = 2\n`);

      const result = await runbook(swapWithTerraform(source, target, dir));
      assert.equal(result.exitCode, 1, result.stdout + result.stderr);
      const status = await finalStatus(idFor(source));
      assert.equal(status.phase, 'failed');
      assert.match(status.error ?? '', new RegExp(`refused, nothing applied: it would replace terraform_data\\.encryption_key, not only ${address.replace('.', '\\.')}`));
      assert.deepEqual(
        ['detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan', 'copy-objects'].map((step) => stepStates(status)[step]),
        ['done', 'done', 'failed', 'skipped', 'skipped'],
      );
      assert.equal(await tf(dir, ['state', 'show', '-no-color', 'terraform_data.encryption_key'], 'sandbox'), keyBefore, 'the key was not replaced');
      assert.doesNotMatch(await tf(dir, ['state', 'list'], 'sandbox'), new RegExp(address.replace('.', '\\.')), 'the old bucket stays out of the state');
      assert.equal(await bucketExists(target), false, 'no new bucket');
      assert.equal((await listAll(source)).length, 30, 'the old bucket is untouched');
      assertNoPlanLeft(dir, idFor(source));
    });

    it('state rm, targeted plan, guard, apply, outputs; then copies, deletes the old bucket once approved, and leaves no drift', async () => {
      const source = unique('tf-old');
      const target = unique('tf-new');
      const dir = await terraformDirHolding(source);
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${target}"\n`);

      const result = await runbook(swapWithTerraform(source, target, dir));
      assert.equal(result.exitCode, 0, result.stdout + result.stderr);
      const id = idFor(source);
      const waiting = await finalStatus(id);
      assert.equal(waiting.waitingFor?.checkpoint, 'delete-old');
      assert.match(stepDetail(waiting, 'detach-old-state'), new RegExp(`removed ${address.replace('.', '\\.')} from the sandbox state`));
      assert.match(stepDetail(waiting, 'plan-new-bucket'), new RegExp(`create ${address.replace('.', '\\.')}`));
      assert.match(stepDetail(waiting, 'guard-plan'), /^accepted: /);
      // With the real provider Terraform made the bucket, and the run leaves it as Terraform made it.
      assert.match(stepDetail(waiting, 'apply-plan'), new RegExp(mirror ? `s3://${target} existed already` : `created s3://${target}`));
      assert.equal(stepStates(waiting)['create-bucket'], 'skipped');
      assert.equal((await tf(dir, ['output', '-raw', 'bucket_name'], 'sandbox')).trim(), target, 'Terraform names the new bucket');
      assert.match(await tf(dir, ['state', 'list'], 'sandbox'), new RegExp(address.replace('.', '\\.')), 'the new bucket is in the state');
      assertNoPlanLeft(dir, id);
      await assertExactCopy(source, target);

      const approve = await runbook(['approve', id, '--checkpoint', 'delete-old']);
      assert.equal(approve.exitCode, 0, approve.stderr);
      await waitForStatus(id, (s) => s.phase === 'succeeded');
      assert.equal(await bucketExists(source), false);
      assert.equal((await listAll(target)).length, 30);
      // The state and the world agree: a full plan has nothing to do.
      await tf(dir, ['plan', '-detailed-exitcode', '-input=false', '-no-color'], 'sandbox', [0]);
    });
  });

  describe('bad input exits 2 and changes nothing', () => {
    const source = unique('bad-input-src');
    const occupied = unique('bad-input-occupied');

    before(async () => {
      await worker().start();
      await s3.send(new CreateBucketCommand({ Bucket: source }));
      await s3.send(new PutObjectCommand({ Bucket: source, Key: 'a.txt', Body: 'a' }));
      await s3.send(new CreateBucketCommand({ Bucket: occupied }));
      await s3.send(new PutObjectCommand({ Bucket: occupied, Key: 'taken.txt', Body: 'taken' }));
    });

    const cases: [string, (fresh: string) => string[], RegExp][] = [
      ['an invalid bucket name', (fresh) => [`source=${source}`, `target=${fresh.toUpperCase()}_x`], /target: '.*_x' may hold only lowercase letters, digits, dots and hyphens/],
      ['the source as target', () => [`source=${source}`, `target=${source}`], /target: must differ from source/],
      ['a source that does not exist', (fresh) => [`source=${unique('no-such-bucket')}`, `target=${fresh}`], /source: no bucket named 'no-such-bucket-\d+'/],
      ['a target that holds objects', () => [`source=${source}`, `target=${occupied}`], /target: s3:\/\/bad-input-occupied-\d+ already holds objects \(e\.g\. 'taken\.txt'\)/],
    ];

    for (const [what, sets, message] of cases) {
      it(`refuses ${what}`, async () => {
        const fresh = unique(`fresh-${what.split(' ').at(-1)}`);
        const bucketsBefore = await bucketNames();
        const result = await runbook(['start', 'bucket-swap', '--env', 'sandbox', ...sets(fresh).flatMap((set) => ['--set', set])]);
        assert.equal(result.exitCode, 2, result.stdout + result.stderr);
        assert.match(result.stdout + result.stderr, message);
        assert.deepEqual(await bucketNames(), bucketsBefore, 'no bucket created or deleted');
        assert.deepEqual((await listAll(source)).map((o) => o.key), ['a.txt']);
        assert.deepEqual((await listAll(occupied)).map((o) => o.key), ['taken.txt']);
      });
    }
  });
});
