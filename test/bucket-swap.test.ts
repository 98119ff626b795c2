/**
 * `bucket-swap` end to end: the real CLI and worker against the sandbox's moto
 * and, in Terraform mode, the real `terraform` binary on a fixture
 * configuration. Every check reads S3 (or Terraform) the way an operator
 * would; copy requests are counted by moto's own recorder, outside the worker
 * that the crash test kills.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketLoggingCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  PutBucketAclCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketLoggingCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  UploadPartCommand,
  GetBucketEncryptionCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectTaggingCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutBucketEncryptionCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import {
  CreateServiceCommand,
  DescribeServicesCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import { defaultPayloadConverter } from '@temporalio/common';
import { execa } from 'execa';
import pLimit from 'p-limit';
import type { CopyCheckpoint } from '../src/activities/s3-copy.js';
import type { RunStatus } from '../src/messages.js';
import { MotoRecorder, s3Request } from '../src/stack/moto-recorder.js';
import { WRITERS_CLUSTER } from '../src/stack/sandbox/db.js';
import { findProviderMirror, motoProviderConfig, writeCliConfig } from '../src/stack/terraform.js';
import { testStack, type TEST_TERRAFORM_DIRS } from './setup.js';
import { listAll, type Listed } from './helpers/s3-listing.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { armGate } from './helpers/gates.js';
import { worker } from './helpers/worker.js';

const fixtureTerraformDir = fileURLToPath(new URL('../../test/fixtures/terraform/', import.meta.url));
const realFixtureTerraformDir = fileURLToPath(new URL('../../test/fixtures/terraform-aws/', import.meta.url));
const unique = (label: string) => `${label}-${process.pid}`;
const idFor = (source: string) => `bucket-swap:sandbox:${source}`;

/** Parts of 5 MiB (moto's minimum, as S3's) above 8 MiB, so one 12 MiB object is copied in 3 parts. */
const SMALL_PARTS = ['--set', 'multipartThreshold=8MiB', '--set', 'partSize=5MiB'];
const LARGE_OBJECT_SIZE = 12 * 2 ** 20;
const LARGE_OBJECT_PARTS = 3;

describe('bucket-swap on the sandbox', function () {
  this.timeout(5 * 60_000);
  let s3: S3Client;

  before(() => {
    s3 = new S3Client({
      endpoint: testStack().awsEndpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  });

  after(() => s3?.destroy());

  // --- reading and writing S3 as an operator would -------------------------------------------------

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
    await s3.send(
      new PutBucketEncryptionCommand({
        Bucket: bucket,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      }),
    );
    await s3.send(
      new PutPublicAccessBlockCommand({
        Bucket: bucket,
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          IgnorePublicAcls: true,
          BlockPublicPolicy: true,
          RestrictPublicBuckets: true,
        },
      }),
    );
    await s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [{ Key: 'owner', Value: 'tests' }] } }));
    const limit = pLimit(16);
    await Promise.all(objects.map((object) => limit(() => s3.send(new PutObjectCommand({ Bucket: bucket, ...object })))));
  }

  /** Every key, size and ETag of `copy` matches `source`; the large object is a 3-part copy. */
  async function assertExactCopy(source: string, copy: string): Promise<Listed[]> {
    const [expected, actual] = await Promise.all([listAll(s3, source), listAll(s3, copy)]);
    assert.deepEqual(
      actual.map((o) => o.key),
      expected.map((o) => o.key),
      'the same keys, in the same order',
    );
    for (const [i, original] of expected.entries()) {
      const copied = actual[i]!;
      assert.equal(copied.size, original.size, `size of ${original.key}`);
      if (original.size > 8 * 2 ** 20)
        assert.match(copied.etag, new RegExp(`-${LARGE_OBJECT_PARTS}"$`), `${original.key} copied in ${LARGE_OBJECT_PARTS} parts`);
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
        s3
          .send(new GetBucketEncryptionCommand({ Bucket }))
          .then((r) => r.ServerSideEncryptionConfiguration?.Rules?.map((rule) => rule.ApplyServerSideEncryptionByDefault?.SSEAlgorithm)),
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
        {
          Key: 'e2e/special/ü ñ + % & =.txt',
          Body: 'odd key\n',
          ContentType: 'text/plain; charset=utf-8',
          Metadata: { seq: 'special' },
          Tagging: 'odd=yes',
        },
        { Key: 'e2e/j/9/obj-1999.txt', Body: 'last\n', ContentType: 'text/plain', Metadata: { seq: '1999' }, Tagging: 'kind=last' },
        {
          Key: LARGE_KEY,
          Body: Buffer.alloc(LARGE_OBJECT_SIZE, 7),
          ContentType: 'application/octet-stream',
          Metadata: { seq: 'large' },
          Tagging: 'size=large',
        },
      );
      await createSourceBucket(source, objects);
      // Older versions too: deleting the old bucket must remove every version.
      await s3.send(
        new PutObjectCommand({
          Bucket: source,
          Key: 'e2e/a/0/obj-0.txt',
          Body: Buffer.alloc(0),
          ContentType: 'text/plain',
          Metadata: { seq: '0' },
          Tagging: 'kind=tenth&seq=0',
        }),
      );
      assert.equal((await listAll(s3, source)).length, 2001);
    });

    it('after a SIGKILL mid-copy, resumes from the checkpoint (copy requests < 1.5x objects), copies every object exactly; a rejection keeps both buckets', async function () {
      this.timeout(240_000);
      const target = unique('swap-crash');
      const id = idFor(source);
      const recorder = new MotoRecorder(testStack().awsEndpoint);
      await recorder.start();
      // The copy holds after its first page, until the server has that checkpoint (heartbeats reach it every 8 s at most).
      const gate = armGate(`copy-after-page-1.${target}`);
      const started = await runbook([
        'start',
        'bucket-swap',
        '--env',
        'sandbox',
        '--set',
        `source=${source}`,
        '--set',
        `target=${target}`,
        ...SMALL_PARTS,
      ]);
      assert.equal(started.exitCode, 0, started.stderr);

      await gate.reached(60_000);
      let checkpoint: CopyCheckpoint | undefined;
      await waitUntil(
        async () => {
          checkpoint = await copyCheckpoint(id);
          return (checkpoint?.pages ?? 0) >= 1;
        },
        { timeoutMs: 30_000, what: () => `the server to hold the copy's checkpoint (last: ${JSON.stringify(checkpoint)})` },
      );
      await worker().kill('SIGKILL');
      const copiedAtKill = (await listAll(s3, target)).length;
      assert.ok(copiedAtKill < 2001, `killed mid-copy (${copiedAtKill} objects copied)`);
      gate.open();
      await worker().start();

      const waiting = await waitForStatus(id, (s) => s.phase === 'waiting' || s.phase === 'failed', 150_000);
      const requests = await recorder.stop();
      assert.equal(waiting.phase, 'waiting', waiting.error ?? '');
      const copyRequests = requests
        .map(s3Request)
        .filter((r) => r.bucket === target && (r.operation === 'CopyObject' || r.operation === 'UploadPartCopy'));
      const objects = 2001;
      console.log(
        `      copy requests after the SIGKILL: ${copyRequests.length} for ${objects} objects (at the kill: ${copiedAtKill} copied, checkpoint at ${checkpoint!.objects}); ${stepDetail(waiting, 'copy-objects')}`,
      );
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
      assert.equal((await listAll(s3, source)).length, objects, 'the old bucket is untouched');
      assert.equal((await listAll(s3, target)).length, objects, 'the new bucket is kept');
    });

    it('copies, verifies and, after `runbook approve`, deletes the old bucket with every version', async function () {
      this.timeout(240_000);
      const target = unique('swap-e2e-new');
      const id = idFor(source);
      const result = await runbook([
        'start',
        'bucket-swap',
        '--env',
        'sandbox',
        '--set',
        `source=${source}`,
        '--set',
        `target=${target}`,
        ...SMALL_PARTS,
        '--wait',
      ]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, /Waiting at checkpoint 'delete-old'/);

      const waiting = await finalStatus(id);
      assert.match(
        waiting.waitingFor?.prompt ?? '',
        /verified copy of all 2,001 objects \(\d+(\.\d+)? MiB\) of s3:\/\/swap-e2e-\d+: keys, sizes and ETags match \(1 multipart copy; content checked where ETags differ by design \(1 object, MD5 of each part\)\)/,
      );
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
      assert.equal((await listAll(s3, target)).length, 2001);

      const history = await (await temporalClient()).workflow.getHandle(id).fetchHistory();
      const events = history.events?.length ?? 0;
      console.log(`      history of the 2,001-object run: ${events} events`);
      assert.ok(events < 120, `the history grows with steps, not objects (${events} events)`);
    });
  });

  it('a dry run reads the buckets and records what it would do, changing nothing', async () => {
    await worker().start();
    // Other lanes make and remove buckets of their own meanwhile: compare the sandbox's buckets and the source's objects.
    const sandboxBuckets = async () => (await bucketNames()).filter((name) => name.startsWith('sandbox-'));
    const [bucketsBefore, objectsBefore] = await Promise.all([sandboxBuckets(), listAll(s3, 'sandbox-uploads')]);
    // The sandbox's own defaults: sandbox-uploads -> sandbox-uploads-v2, mode aws.
    const result = await runbook(['start', 'bucket-swap', '--env', 'sandbox', '--dry-run', '--wait']);
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
    const status = await finalStatus(idFor('sandbox-uploads'));
    assert.equal(status.phase, 'succeeded');
    assert.equal(stepStates(status).preflight, 'done');
    assert.match(
      stepDetail(status, 'preflight'),
      /s3:\/\/sandbox-uploads in us-east-1 \(versioning enabled, encryption AES256, public access blocked, 2 tags[^;]*\); s3:\/\/sandbox-uploads-v2 does not exist yet/,
    );
    for (const step of ['create-bucket', 'copy-objects', 'verify', 'delete-old', 'delete-old-bucket'])
      assert.match(stepDetail(status, step), /^would /, step);
    assert.deepEqual(await sandboxBuckets(), bucketsBefore, 'no bucket made or removed');
    assert.deepEqual(await listAll(s3, 'sandbox-uploads'), objectsBefore, 'the source unchanged');
  });

  it('an object changed or removed in the new bucket before verification: nothing deleted, the run fails naming them', async function () {
    this.timeout(120_000);
    await worker().start();
    const gate = armGate('before-verify.sandbox-uploads-v2');
    const before = await listAll(s3, 'sandbox-uploads');
    const started = await runbook(['start', 'bucket-swap', '--env', 'sandbox']);
    assert.equal(started.exitCode, 0, started.stderr);

    await gate.reached(60_000);
    await s3.send(new DeleteObjectCommand({ Bucket: 'sandbox-uploads-v2', Key: 'assets/css/site.css' }));
    await s3.send(
      new PutObjectCommand({ Bucket: 'sandbox-uploads-v2', Key: 'reports/2024/q1.csv', Body: 'tampered\n', ContentType: 'text/csv' }),
    );
    gate.open();

    const watched = await runbook(['watch', idFor('sandbox-uploads')]);
    assert.equal(watched.exitCode, 1);
    const status = await finalStatus(idFor('sandbox-uploads'));
    assert.equal(status.phase, 'failed');
    assert.match(
      status.error ?? '',
      /not an exact copy of s3:\/\/sandbox-uploads: 2 of \d+ objects .* differ: 'assets\/css\/site.css' missing in the copy; 'reports\/2024\/q1.csv' (ETag|size)/,
    );
    assert.match(status.error ?? '', /Nothing was deleted: s3:\/\/sandbox-uploads is untouched/);
    assert.deepEqual(
      [stepStates(status).verify, stepStates(status)['delete-old'], stepStates(status)['delete-old-bucket']],
      ['failed', 'skipped', 'skipped'],
    );
    assert.deepEqual(await listAll(s3, 'sandbox-uploads'), before, 'the old bucket is untouched');
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
    assert.deepEqual(
      status.decisions.map((d) => [d.decision, d.by]),
      [['rejected', 'timeout']],
    );
    assert.match(
      status.error ?? '',
      /checkpoint 'delete-old' timed out \(no decision within 2s\)\. Nothing was deleted: both buckets are kept/,
    );
    assert.deepEqual(
      (await listAll(s3, source)).map((o) => o.key),
      ['kept.txt'],
    );
    assert.deepEqual(
      (await listAll(s3, target)).map((o) => o.key),
      ['kept.txt'],
    );
  });

  describe('a protected bucket with a writer service: settings carried, writers stopped, changes after approval refused', () => {
    const source = unique('guarded-old');
    const target = unique('guarded-new');
    const logs = unique('guarded-logs');
    const writerService = unique('uploads-writer');
    const id = idFor(source);
    const LARGE_KEY = 'media/video.bin';
    let ecs: ECSClient;
    let waiting: RunStatus;
    let duringCopy: { desiredCount: number; running: number };
    const policy = (bucket: string) =>
      JSON.stringify({
        Version: '2012-10-17',
        // An Allow for a reader account: moto enforces policies, and a TLS-only Deny would refuse the test's own http requests.
        Statement: [
          {
            Sid: 'CdnReads',
            Effect: 'Allow',
            Principal: { AWS: 'arn:aws:iam::111122223333:root' },
            Action: ['s3:GetObject', 's3:ListBucket'],
            Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
          },
        ],
      });
    const lifecycle = [{ ID: 'expire-tmp', Status: 'Enabled' as const, Filter: { Prefix: 'tmp/' }, Expiration: { Days: 7 } }];
    const cors = [
      { AllowedMethods: ['GET', 'HEAD'], AllowedOrigins: ['https://app.example.com'], AllowedHeaders: ['*'], MaxAgeSeconds: 3000 },
    ];

    async function writerNow(): Promise<{ desiredCount: number; running: number }> {
      const { services = [] } = await ecs.send(new DescribeServicesCommand({ cluster: WRITERS_CLUSTER, services: [writerService] }));
      const { taskArns = [] } = await ecs.send(new ListTasksCommand({ cluster: WRITERS_CLUSTER, desiredStatus: 'RUNNING' }));
      const { tasks = [] } = taskArns.length
        ? await ecs.send(new DescribeTasksCommand({ cluster: WRITERS_CLUSTER, tasks: taskArns }))
        : { tasks: [] };
      return {
        desiredCount: services[0]!.desiredCount!,
        running: tasks.filter((t) => t.group === `service:${writerService}` && t.lastStatus === 'RUNNING').length,
      };
    }

    /** An ECS service whose task definition names the old bucket, as an application's would; the sandbox's simulator runs its task. */
    async function startWriterService(): Promise<void> {
      const { services = [] } = await ecs.send(new DescribeServicesCommand({ cluster: WRITERS_CLUSTER, services: ['app-writer'] }));
      const { taskDefinition } = await ecs.send(
        new RegisterTaskDefinitionCommand({
          family: writerService,
          networkMode: 'awsvpc',
          requiresCompatibilities: ['FARGATE'],
          cpu: '256',
          memory: '512',
          containerDefinitions: [
            {
              name: 'app',
              image: 'sandbox/uploads:latest',
              cpu: 256,
              memory: 512,
              environment: [
                { name: 'UPLOADS_BUCKET', value: source },
                { name: 'UNRELATED', value: `${source}-archive` },
              ],
            },
          ],
        }),
      );
      await ecs.send(
        new CreateServiceCommand({
          cluster: WRITERS_CLUSTER,
          serviceName: writerService,
          taskDefinition: taskDefinition!.taskDefinitionArn,
          desiredCount: 1,
          launchType: 'FARGATE',
          networkConfiguration: services[0]!.networkConfiguration,
        }),
      );
      await waitUntil(async () => (await writerNow()).running === 1, { timeoutMs: 60_000, what: `a task of ${writerService}` });
    }

    /** Replaces an object by a multipart upload of the same size and part count, with other bytes: only a content check tells. */
    async function rewriteInParts(bucket: string, key: string, sizes: number[]): Promise<void> {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const parts = [];
      for (const [i, size] of sizes.entries()) {
        const { ETag } = await s3.send(
          new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: Buffer.alloc(size, 9) }),
        );
        parts.push({ ETag, PartNumber: i + 1 });
      }
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
    }

    before(async function () {
      this.timeout(240_000);
      ecs = new ECSClient({
        endpoint: testStack().awsEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      await worker().start();
      await s3.send(new CreateBucketCommand({ Bucket: logs }));
      const logDelivery = 'uri="http://acs.amazonaws.com/groups/s3/LogDelivery"';
      await s3.send(
        new PutBucketAclCommand({
          Bucket: logs,
          GrantWrite: logDelivery,
          GrantReadACP: logDelivery,
          GrantFullControl: `id="${(await s3.send(new ListBucketsCommand({}))).Owner!.ID!}"`,
        }),
      );
      await createSourceBucket(source, [
        { Key: 'docs/a.txt', Body: 'first edition\n', ContentType: 'text/plain' },
        { Key: 'docs/b.txt', Body: 'b\n', ContentType: 'text/plain' },
        { Key: LARGE_KEY, Body: Buffer.alloc(LARGE_OBJECT_SIZE, 3), ContentType: 'application/octet-stream' },
      ]);
      await s3.send(new PutObjectCommand({ Bucket: source, Key: 'docs/a.txt', Body: 'second edition\n', ContentType: 'text/plain' }));
      await s3.send(
        new PutBucketOwnershipControlsCommand({
          Bucket: source,
          OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerPreferred' }] },
        }),
      );
      await s3.send(new PutBucketPolicyCommand({ Bucket: source, Policy: policy(source) }));
      await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: source, LifecycleConfiguration: { Rules: lifecycle } }));
      await s3.send(new PutBucketCorsCommand({ Bucket: source, CORSConfiguration: { CORSRules: cors } }));
      await s3.send(
        new PutBucketLoggingCommand({
          Bucket: source,
          BucketLoggingStatus: { LoggingEnabled: { TargetBucket: logs, TargetPrefix: 'access/' } },
        }),
      );
      await startWriterService();

      // Held before verification: the copy is done, and the writer must be stopped by now.
      const gate = armGate(`before-verify.${target}`);
      const started = await runbook([
        'start',
        'bucket-swap',
        '--env',
        'sandbox',
        '--set',
        `source=${source}`,
        '--set',
        `target=${target}`,
        ...SMALL_PARTS,
        '--set',
        `writers=${JSON.stringify([{ cluster: WRITERS_CLUSTER, service: writerService }])}`,
        '--set',
        'writersTimeout=2m',
      ]);
      assert.equal(started.exitCode, 0, started.stdout + started.stderr);
      try {
        await waitForStatus(id, (st) => gate.isReached() || st.phase !== 'running', 120_000);
      } finally {
        const pending = (await (await temporalClient()).workflow.getHandle(id).describe()).raw.pendingActivities ?? [];
        const failures = pending.map((a) => `${a.activityType?.name} attempt ${a.attempt}: ${a.lastFailure?.message ?? 'no failure'}`);
        assert.ok(gate.isReached(), `the run reaches verification (${(await finalStatus(id)).error ?? ''} ${failures.join('; ')})`);
      }
      duringCopy = await writerNow();
      // What S3 would deliver (moto writes no access logs): requests to both buckets since the copy started.
      const line = (bucket: string, op: string) =>
        `owner ${bucket} [${new Date().toUTCString()}] 10.0.0.1 - REQ ${op} docs/a.txt "GET /docs/a.txt HTTP/1.1" 200 - 14 14 1 1 "-" "cdn" -`;
      await s3.send(
        new PutObjectCommand({
          Bucket: logs,
          Key: `access/${new Date().toISOString().slice(0, 19).replace(/[T:]/g, '-')}-ABCDEF0123456789`,
          Body: [line(source, 'REST.GET.OBJECT'), line(source, 'REST.HEAD.OBJECT'), line(target, 'REST.GET.OBJECT')].join('\n') + '\n',
        }),
      );
      gate.open();
      waiting = await waitForStatus(id, (st) => st.phase !== 'running', 120_000);
      assert.equal(waiting.phase, 'waiting', waiting.error ?? '');
    });

    after(async () => {
      const handle = (await temporalClient()).workflow.getHandle(id);
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
      ecs?.destroy();
    });

    it('stops the writer for the copy and starts it again before asking; the new bucket has the policy (renamed), lifecycle rule, CORS, ownership and logging', async () => {
      assert.deepEqual(duringCopy, { desiredCount: 0, running: 0 }, 'nothing of the writer runs while the copy is made');
      assert.deepEqual(await writerNow(), { desiredCount: 1, running: 1 }, 'the writer runs again as it was');
      assert.deepEqual(
        ['stop-writers', 'verify', 'start-writers', 'check-readers'].map((step) => stepStates(waiting)[step]),
        ['done', 'done', 'done', 'done'],
      );
      assert.match(stepDetail(waiting, 'verify'), /content checked where ETags differ by design \(1 object, MD5 of each part\)/);

      const read = (Bucket: string) =>
        Promise.all([
          s3
            .send(new GetBucketLifecycleConfigurationCommand({ Bucket }))
            .then((r) =>
              r.Rules?.map((rule) => ({ ID: rule.ID, Status: rule.Status, Prefix: rule.Filter?.Prefix, Days: rule.Expiration?.Days })),
            ),
          s3.send(new GetBucketCorsCommand({ Bucket })).then((r) =>
            r.CORSRules?.map(({ AllowedMethods, AllowedOrigins, AllowedHeaders, MaxAgeSeconds }) => ({
              AllowedMethods,
              AllowedOrigins,
              AllowedHeaders,
              MaxAgeSeconds,
            })),
          ),
          s3.send(new GetBucketOwnershipControlsCommand({ Bucket })).then((r) => r.OwnershipControls?.Rules?.[0]?.ObjectOwnership),
          s3
            .send(new GetBucketLoggingCommand({ Bucket }))
            .then((r) => r.LoggingEnabled && { bucket: r.LoggingEnabled.TargetBucket, prefix: r.LoggingEnabled.TargetPrefix }),
        ]);
      const [carried, original] = await Promise.all([read(target), read(source)]);
      assert.deepEqual(carried, original);
      assert.deepEqual(carried, [
        [{ ID: 'expire-tmp', Status: 'Enabled', Prefix: 'tmp/', Days: 7 }],
        cors,
        'BucketOwnerPreferred',
        { bucket: logs, prefix: 'access/' },
      ]);
      const carriedPolicy = JSON.parse((await s3.send(new GetBucketPolicyCommand({ Bucket: target }))).Policy!) as unknown;
      assert.deepEqual(carriedPolicy, JSON.parse(policy(target)), 'the policy, naming the new bucket');
      await assertSettingsCopied(source, target);
    });

    it('asks with what the delete drops, what the writer names, and the evidence of reads', () => {
      const prompt = waiting.waitingFor?.prompt ?? '';
      console.log(`      delete-old prompt:\n${prompt.replace(/^/gm, '        ')}`);
      assert.match(prompt, new RegExp(`verified copy of all 3 objects .* of s3://${source}`));
      assert.match(
        prompt,
        new RegExp(
          `Dropped by the delete: s3://${source} also holds 1 older versions \\(of keys such as 'docs/a.txt'\\) and 0 delete markers`,
        ),
      );
      assert.match(prompt, new RegExp(`${writerService}: UPLOADS_BUCKET names s3://${source} \\(the OLD bucket\\)`));
      assert.doesNotMatch(prompt, /UNRELATED/, 'a longer bucket name is not the old bucket');
      assert.match(prompt, new RegExp(`Do the application and the CDN now read s3://${target}\\?`));
      // moto delivers access logs of its own too (past 20 log objects the prompt reads the newest 20): at least the test's requests are counted.
      const logged = new RegExp(
        `access logs \\((?:the newest \\d+ of )?\\d+ log objects? in s3://${logs}/access/ since [^)]+\\): (\\d+) requests to s3://${source}, (\\d+) to s3://${target}`,
      ).exec(prompt);
      assert.ok(logged, 'the prompt counts requests in the access logs');
      assert.ok(Number(logged[1]) >= 2 && Number(logged[2]) >= 1, `requests to both buckets counted (${logged[0]})`);
      assert.match(prompt, new RegExp(`request metrics: none configured on s3://${source}`));
      assert.match(prompt, /CDN: this runbook cannot read CloudFront/);
      assert.match(prompt, /Right before deleting, both buckets are compared again/);
    });

    it('an object added to the source and two changed in the target (one rewritten in parts, same size) after approval: deletes nothing and names them', async function () {
      this.timeout(180_000);
      const gate = armGate(`before-recheck.${target}`);
      const approve = await runbook(['approve', id, '--checkpoint', 'delete-old', '--comment', 'reads the new bucket']);
      assert.equal(approve.exitCode, 0, approve.stderr);
      await gate.reached(60_000);
      await s3.send(new PutObjectCommand({ Bucket: source, Key: 'docs/added-after-approval.txt', Body: 'late\n' }));
      await s3.send(new PutObjectCommand({ Bucket: target, Key: 'docs/b.txt', Body: 'changed in the new bucket\n' }));
      await rewriteInParts(target, LARGE_KEY, [5 * 2 ** 20, 5 * 2 ** 20, 2 * 2 ** 20]);
      const sourceBefore = await listAll(s3, source);
      gate.open();

      const watched = await runbook(['watch', id]);
      assert.equal(watched.exitCode, 1, watched.stdout);
      const status = await finalStatus(id);
      assert.equal(status.phase, 'failed', 'after the writers run again nothing is undone: failed, not rolled back');
      const error = status.error ?? '';
      assert.match(error, new RegExp(`s3://${source} was not deleted: since the copy was verified and approved, 3 objects differ`));
      assert.match(error, /'docs\/added-after-approval\.txt' missing in the copy/);
      assert.match(error, /'docs\/b\.txt' (ETag|size)/);
      assert.match(error, new RegExp(`'${LARGE_KEY}' content differs`));
      assert.match(error, /Nothing was deleted: both buckets are kept/);
      assert.deepEqual([stepStates(status).recheck, stepStates(status)['delete-old-bucket']], ['failed', 'skipped']);
      assert.deepEqual(await listAll(s3, source), sourceBefore, 'the old bucket is untouched');
      assert.equal(await bucketExists(target), true);
      assert.deepEqual(await writerNow(), { desiredCount: 1, running: 1 }, 'the writer keeps running');
    });
  });

  describe('terraform mode, with the real terraform binary', () => {
    /** The real hashicorp/aws provider from the machine's mirror; without one, the terraform_data stand-in fixture. */
    const mirror = findProviderMirror();
    const address = mirror ? 'aws_s3_bucket.static' : 'terraform_data.static';
    let cliConfig: string | undefined;

    before(async () => {
      if (!mirror)
        console.log(
          '      real provider not found (no hashicorp/aws mirror): terraform mode runs on the terraform_data stand-in fixture, creating no bucket through Terraform',
        );
      cliConfig = mirror ? await writeCliConfig(join(testStack().dir, 'bucket-swap-terraform.rc'), mirror) : undefined;
      await worker().start();
    });

    /**
     * A copy of the fixture configuration whose state (workspace `sandbox`)
     * holds the old bucket, holding 30 objects; with the real provider,
     * Terraform created that bucket in moto.
     */
    async function terraformDirHolding(name: (typeof TEST_TERRAFORM_DIRS)[number], oldBucket: string): Promise<string> {
      const dir = join(testStack().dir, 'terraform-dirs', name);
      mkdirSync(dir, { recursive: true });
      cpSync(mirror ? realFixtureTerraformDir : fixtureTerraformDir, dir, { recursive: true });
      if (mirror) writeFileSync(join(dir, 'provider.tf'), motoProviderConfig({ endpoint: testStack().awsEndpoint, region: 'us-east-1' }));
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${oldBucket}"\n`);
      await tf(dir, ['init', '-input=false', '-no-color']);
      await tf(dir, ['workspace', 'new', 'sandbox']);
      await tf(dir, ['apply', '-auto-approve', '-input=false', '-no-color'], 'sandbox');
      const files = Array.from({ length: 30 }, (_, i) => ({
        Key: `static/file-${i}.css`,
        Body: `a { order: ${i} }\n`,
        ContentType: 'text/css',
      }));
      if (mirror) await Promise.all(files.map((file) => s3.send(new PutObjectCommand({ Bucket: oldBucket, ...file }))));
      else await createSourceBucket(oldBucket, files);
      return dir;
    }

    async function tf(dir: string, args: string[], workspace?: string, exitCodes = [0]): Promise<string> {
      const env = { ...(workspace ? { TF_WORKSPACE: workspace } : {}), ...(cliConfig ? { TF_CLI_CONFIG_FILE: cliConfig } : {}) };
      const result = await execa('terraform', args, { cwd: dir, env, reject: false });
      assert.ok(
        exitCodes.includes(result.exitCode ?? -1),
        `terraform ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}${result.stdout.slice(-2000)}`,
      );
      return result.stdout;
    }

    /** The run's plan files are gone: none in the Terraform directory, none left in the worker's run folders. */
    function assertNoPlanLeft(dir: string, workflowId: string): void {
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.endsWith('.tfplan')),
        [],
        'no plan in the Terraform directory',
      );
      const runs = join(tmpdir(), 'runbook-terraform', workflowId.replace(/[^A-Za-z0-9._-]/g, '_'));
      const left = existsSync(runs) ? readdirSync(runs).flatMap((run) => readdirSync(join(runs, run))) : [];
      assert.deepEqual(left, [], 'the saved plan was deleted');
    }

    /** The directory by its name in the environment's terraform.dirs: a run never takes a path. */
    const swapWithTerraform = (source: string, target: string, dir: (typeof TEST_TERRAFORM_DIRS)[number]) => [
      'start',
      'bucket-swap',
      '--env',
      'sandbox',
      '--set',
      `source=${source}`,
      '--set',
      `target=${target}`,
      '--set',
      'mode=terraform',
      '--set',
      `terraform.dir=${dir}`,
      '--set',
      'terraform.workspace=sandbox',
      '--set',
      `terraform.address=${address}`,
      '--wait',
    ];

    it('refuses, before apply, a plan that would replace something besides the bucket', async () => {
      const source = unique('tf-guard-old');
      const target = unique('tf-guard-new');
      const dir = await terraformDirHolding('swap-guard', source);
      const keyBefore = await tf(dir, ['state', 'show', '-no-color', 'terraform_data.encryption_key'], 'sandbox');
      // The operator renames the bucket, and (by mistake) bumps the key it depends on.
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${target}"\nkey_generation = 2\n`);

      const result = await runbook(swapWithTerraform(source, target, 'swap-guard'));
      assert.equal(result.exitCode, 1, result.stdout + result.stderr);
      const status = await finalStatus(idFor(source));
      assert.equal(status.phase, 'failed');
      assert.match(
        status.error ?? '',
        new RegExp(`refused, nothing applied: it would replace terraform_data\\.encryption_key, not only ${address.replace('.', '\\.')}`),
      );
      assert.deepEqual(
        ['detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan', 'copy-objects'].map((step) => stepStates(status)[step]),
        ['done', 'done', 'failed', 'skipped', 'skipped'],
      );
      assert.equal(
        await tf(dir, ['state', 'show', '-no-color', 'terraform_data.encryption_key'], 'sandbox'),
        keyBefore,
        'the key was not replaced',
      );
      assert.doesNotMatch(
        await tf(dir, ['state', 'list'], 'sandbox'),
        new RegExp(address.replace('.', '\\.')),
        'the old bucket stays out of the state',
      );
      assert.equal(await bucketExists(target), false, 'no new bucket');
      assert.equal((await listAll(s3, source)).length, 30, 'the old bucket is untouched');
      assertNoPlanLeft(dir, idFor(source));
    });

    it('state rm, targeted plan, guard, apply, outputs; then copies, deletes the old bucket once approved, and leaves no drift', async () => {
      const source = unique('tf-old');
      const target = unique('tf-new');
      const dir = await terraformDirHolding('swap-apply', source);
      writeFileSync(join(dir, 'terraform.tfvars'), `bucket_name = "${target}"\n`);

      const result = await runbook(swapWithTerraform(source, target, 'swap-apply'));
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
      assert.equal((await listAll(s3, target)).length, 30);
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
      [
        'an invalid bucket name',
        (fresh) => [`source=${source}`, `target=${fresh.toUpperCase()}_x`],
        /target: '.*_x' may hold only lowercase letters, digits, dots and hyphens/,
      ],
      ['the source as target', () => [`source=${source}`, `target=${source}`], /target: must differ from source/],
      [
        'a source that does not exist',
        (fresh) => [`source=${unique('no-such-bucket')}`, `target=${fresh}`],
        /source: no bucket named 'no-such-bucket-\d+'/,
      ],
      [
        'a target that holds objects',
        () => [`source=${source}`, `target=${occupied}`],
        /target: s3:\/\/bad-input-occupied-\d+ already holds objects \(e\.g\. 'taken\.txt'\)/,
      ],
      [
        'a Terraform directory given as a path',
        (fresh) => [
          `source=${source}`,
          `target=${fresh}`,
          'mode=terraform',
          `terraform.dir=${testStack().dir}`,
          'terraform.address=aws_s3_bucket.static',
        ],
        /terraform\.dir: must be the name of a Terraform directory/,
      ],
      [
        'a Terraform directory the environment does not list',
        (fresh) => [
          `source=${source}`,
          `target=${fresh}`,
          'mode=terraform',
          'terraform.dir=elsewhere',
          'terraform.address=aws_s3_bucket.static',
        ],
        /terraform\.dir: 'elsewhere' is not a Terraform directory of sandbox \(allowed: [^)]*\bswap-guard, swap-apply\b/,
      ],
    ];

    for (const [what, sets, message] of cases) {
      it(`refuses ${what}`, async () => {
        const fresh = unique(`fresh-${what.split(' ').at(-1)}`);
        const result = await runbook(['start', 'bucket-swap', '--env', 'sandbox', ...sets(fresh).flatMap((set) => ['--set', set])]);
        assert.equal(result.exitCode, 2, result.stdout + result.stderr);
        assert.match(result.stdout + result.stderr, message);
        // Other lanes make and remove buckets meanwhile: the run could only have made the target or emptied the others.
        assert.ok(!(await bucketNames()).includes(fresh), `no bucket ${fresh} made`);
        assert.deepEqual(
          (await listAll(s3, source)).map((o) => o.key),
          ['a.txt'],
        );
        assert.deepEqual(
          (await listAll(s3, occupied)).map((o) => o.key),
          ['taken.txt'],
        );
      });
    }
  });
});
