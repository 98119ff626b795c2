/**
 * bucket-swap's copy engine against the stack's real moto, through a proxy
 * (src/stack/s3-proxy.ts) that counts every request from outside the client
 * and, for the first test, answers 503 SlowDown to a share of requests and
 * drops connections. The activities run in Temporal's activity environment
 * (heartbeats and cancellation as the worker gives them), not in a workflow:
 * what is under test is the copy against S3, not the orchestration
 * (test/bucket-swap.test.ts runs the whole runbook).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import pLimit from 'p-limit';
import { awsClients } from '../src/activities/aws.js';
import { createS3Activities, type CopyObjectsArgs, type CopyResult, type VerifiedCopy } from '../src/activities/s3.js';
import { startS3Proxy, type S3Proxy, type S3ProxyCounts } from '../src/stack/s3-proxy.js';
import { testStack } from './setup.js';
import { listAll } from './helpers/s3-listing.js';

const REGION = 'us-east-1';
const MiB = 2 ** 20;

describe('bucket-swap copy engine, through a counting proxy in front of moto', function () {
  let s3: S3Client;
  let proxy: S3Proxy;
  const { copyBucketObjects, verifyBucketCopy } = createS3Activities({ aws: awsClients });

  before(async () => {
    s3 = new S3Client({ endpoint: testStack().awsEndpoint, region: REGION, forcePathStyle: true });
    proxy = await startS3Proxy(testStack().awsEndpoint);
  });

  after(async () => {
    s3?.destroy();
    await proxy?.close();
  });

  const unique = (label: string) => `copy-${label}-${process.pid}`;

  function total(counts: S3ProxyCounts): number {
    return (
      Object.values(counts.answered).reduce((a, b) => a + b, 0) + counts.slowDowns + counts.droppedBeforeServer + counts.droppedAfterServer
    );
  }

  function copyArgs(source: string, target: string, overrides: Partial<CopyObjectsArgs> = {}): CopyObjectsArgs {
    return {
      aws: { region: REGION, endpoint: proxy.endpoint },
      source,
      target,
      concurrency: 16,
      multipartThreshold: 5 * 2 ** 30,
      partSize: 512 * MiB,
      ...overrides,
    };
  }

  it('copies every object while S3 answers 503 SlowDown and drops connections; backs off; requests within 1.1x of the floor plus retries', async function () {
    this.timeout(5 * 60_000);
    const objects = 400;
    const [source, target] = [unique('faults-src'), unique('faults-dst')];
    await s3.send(new CreateBucketCommand({ Bucket: source }));
    await s3.send(new CreateBucketCommand({ Bucket: target }));
    const limit = pLimit(16);
    await Promise.all(
      Array.from({ length: objects }, (_, i) =>
        limit(() =>
          s3.send(
            new PutObjectCommand({
              Bucket: source,
              Key: `d${i % 7}/o-${String(i).padStart(4, '0')}`,
              Body: `object ${i} ${'x'.repeat(i)}`,
              Metadata: { seq: String(i) },
            }),
          ),
        ),
      ),
    );

    await proxy.reset();
    await proxy.setFaults({ slowDown: 0.15, drop: 0.06 });
    const result: CopyResult = await new MockActivityEnvironment().run(copyBucketObjects, copyArgs(source, target));
    const counts = await proxy.counts();
    await proxy.setFaults({});

    const pages = Math.ceil(objects / 1000);
    const floor = pages + objects; // one listing per page, one CopyObject per object
    const faults = counts.slowDowns + counts.droppedBeforeServer + counts.droppedAfterServer;
    console.log(
      `      ${total(counts)} requests for a floor of ${floor}: ${JSON.stringify(counts.answered)} answered; ` +
        `${counts.slowDowns} SlowDown, ${counts.droppedBeforeServer} dropped before and ${counts.droppedAfterServer} after the server; ` +
        `limit went down to ${result.throttling?.lowest} of 16 (${result.throttling?.decreases} halvings), ${result.throttling?.resent} re-sent by the copier`,
    );
    assert.ok(
      counts.slowDowns > 10 && counts.droppedBeforeServer + counts.droppedAfterServer > 5,
      `faults were injected: ${JSON.stringify(counts)}`,
    );
    assert.equal(result.objects, objects);
    assert.equal(result.copied, objects);
    assert.ok(total(counts) <= 1.1 * floor + faults, `${total(counts)} requests > 1.1 x ${floor} + ${faults} retries`);
    // A request whose answer was lost is sent again, and lands again: the only copies beyond one per object.
    assert.ok(
      (counts.answered.CopyObject ?? 0) <= objects + counts.droppedAfterServer,
      `CopyObject answered ${counts.answered.CopyObject} times`,
    );
    assert.ok(
      result.throttling!.decreases >= 1 && result.throttling!.lowest < 16,
      `the limit backed off: ${JSON.stringify(result.throttling)}`,
    );

    // Every object verified: by the runbook's own verification, and key by key here.
    const verified: VerifiedCopy = await new MockActivityEnvironment().run(verifyBucketCopy, {
      aws: { region: REGION, endpoint: testStack().awsEndpoint },
      source,
      target,
      multipartThreshold: 5 * 2 ** 30,
      partSize: 512 * MiB,
    });
    assert.equal(verified.objects, objects);
    const [expected, actual] = await Promise.all([listAll(s3, source), listAll(s3, target)]);
    assert.deepEqual(actual, expected);
    const head = await s3.send(new HeadObjectCommand({ Bucket: target, Key: 'd4/o-0123' })); // 123 % 7 = 4
    assert.equal(head.Metadata?.seq, '123');
  });

  it('copies a large object by parts in parallel: ETag and part count match the source cut the same way', async function () {
    this.timeout(5 * 60_000);
    const partSize = 5 * MiB;
    const body = randomBytes(17 * MiB); // 4 parts: 5 + 5 + 5 + 2 MiB
    const [source, target] = [unique('parts-src'), unique('parts-dst')];
    await s3.send(new CreateBucketCommand({ Bucket: source }));
    await s3.send(new CreateBucketCommand({ Bucket: target }));
    await s3.send(
      new PutObjectCommand({
        Bucket: source,
        Key: 'big/blob.bin',
        Body: body,
        ContentType: 'application/x-test',
        Metadata: { origin: 'parts-test' },
        Tagging: 'tier=cold',
      }),
    );

    await proxy.reset();
    const result: CopyResult = await new MockActivityEnvironment().run(
      copyBucketObjects,
      copyArgs(source, target, { multipartThreshold: 8 * MiB, partSize }),
    );
    const counts = await proxy.counts();

    // S3's multipart ETag: the MD5 of the parts' MD5s, then "-<parts>".
    const partMd5s = [];
    for (let first = 0; first < body.length; first += partSize)
      partMd5s.push(
        createHash('md5')
          .update(body.subarray(first, first + partSize))
          .digest(),
      );
    const expectedEtag = `"${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${partMd5s.length}"`;
    const copy = await s3.send(new GetObjectCommand({ Bucket: target, Key: 'big/blob.bin' }));
    const bytes = Buffer.from(await copy.Body!.transformToByteArray());
    console.log(
      `      ${JSON.stringify(counts.answered)}; UploadPartCopy at once: ${counts.peakInFlight.UploadPartCopy}; target ETag ${copy.ETag}`,
    );
    assert.equal(result.multipart, 1);
    assert.equal(counts.answered.UploadPartCopy, 4, 'one UploadPartCopy per part');
    assert.ok(
      (counts.peakInFlight.UploadPartCopy ?? 0) >= 2,
      `parts copied in parallel (at most ${counts.peakInFlight.UploadPartCopy} at once)`,
    );
    assert.equal(copy.ETag, expectedEtag, 'the copy was cut into the planned parts');
    assert.ok(bytes.equals(body), 'the copy holds the same bytes');
    assert.equal(copy.ContentType, 'application/x-test');
    assert.equal(copy.Metadata?.origin, 'parts-test');
    const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: target, Key: 'big/blob.bin' }));
    assert.deepEqual(tags.TagSet, [{ Key: 'tier', Value: 'cold' }]);
    const verified: VerifiedCopy = await new MockActivityEnvironment().run(verifyBucketCopy, {
      aws: { region: REGION, endpoint: testStack().awsEndpoint },
      source,
      target,
      multipartThreshold: 8 * MiB,
      partSize,
    });
    assert.deepEqual([verified.objects, verified.multipart], [1, 1]);
  });
});
