/**
 * Copy throughput of bucket-swap's copy activity against `aws s3 sync`, on
 * the same emulator and the same objects: objects per second and the
 * requests each sends, counted by moto's recorder (so both are counted the
 * same way, from outside). Starts and stops its own local stack.
 *
 *   npm run bench:bucket-swap                 # 2,000 objects
 *   BENCH_OBJECTS=5000 npm run bench:bucket-swap
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pLimit from 'p-limit';
import { awsClients } from '../src/activities/aws.js';
import { createS3Activities } from '../src/activities/s3.js';
import { countByOperation, MotoRecorder } from '../src/stack/moto-recorder.js';
import { MOTO_AWS_ENV, startStack } from '../src/stack/index.js';

const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 2000);
const SOURCE = 'bench-source';
const REGION = 'us-east-1';

interface Measurement {
  tool: string;
  objects: number;
  seconds: number;
  requests: Record<string, number>;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-bucket-swap-'));
  Object.assign(process.env, MOTO_AWS_ENV, { AWS_REGION: REGION });
  const stack = await startStack({ dataDir, log: (line) => console.error(line) });
  const s3 = new S3Client({ endpoint: stack.awsEndpoint, region: REGION, forcePathStyle: true });
  try {
    console.error(`writing ${OBJECTS} objects to s3://${SOURCE}...`);
    await fillSource(s3, OBJECTS);
    const recorder = new MotoRecorder(stack.awsEndpoint);
    const results: Measurement[] = [];
    for (const run of [
      { tool: 'bucket-swap copy, 32 at a time', target: 'bench-runbook-32', copy: () => runbookCopy(stack.awsEndpoint, 'bench-runbook-32', 32) },
      { tool: 'aws s3 sync (awscli defaults: 10 at a time)', target: 'bench-awscli', copy: () => awsSync(stack.awsEndpoint, 'bench-awscli') },
      { tool: 'bucket-swap copy, 10 at a time', target: 'bench-runbook-10', copy: () => runbookCopy(stack.awsEndpoint, 'bench-runbook-10', 10) },
    ]) {
      await s3.send(new CreateBucketCommand({ Bucket: run.target }));
      await recorder.start();
      const started = process.hrtime.bigint();
      await run.copy();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const recorded = await recorder.stop();
      const copied = await countObjects(s3, run.target);
      if (copied !== OBJECTS) throw new Error(`${run.tool} copied ${copied} of ${OBJECTS} objects`);
      results.push({ tool: run.tool, objects: copied, seconds, requests: merge(countByOperation(recorded, SOURCE), countByOperation(recorded, run.target)) });
    }
    print(results);
  } finally {
    s3.destroy();
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Small objects under nested prefixes with content types and metadata, like an uploads bucket. */
async function fillSource(s3: S3Client, count: number): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: SOURCE }));
  const limit = pLimit(16);
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      limit(() =>
        s3.send(new PutObjectCommand({
          Bucket: SOURCE,
          Key: `uploads/${i % 10}/${Math.floor(i / 10) % 10}/object-${i}.json`,
          Body: JSON.stringify({ i, pad: 'x'.repeat(i % 2048) }),
          ContentType: 'application/json',
          Metadata: { seq: String(i) },
        })),
      ),
    ),
  );
}

/** The runbook's copy activity, run as the worker runs it (in an activity context), without a workflow around it. */
async function runbookCopy(endpoint: string, target: string, concurrency: number): Promise<void> {
  const { copyBucketObjects } = createS3Activities({ aws: awsClients });
  await new MockActivityEnvironment().run(copyBucketObjects, {
    aws: { region: REGION, endpoint },
    source: SOURCE,
    target,
    concurrency,
    multipartThreshold: 5 * 2 ** 30,
    partSize: 512 * 2 ** 20,
  });
}

async function awsSync(endpoint: string, target: string): Promise<void> {
  await execa('aws', ['--endpoint-url', endpoint, '--region', REGION, 's3', 'sync', '--only-show-errors', `s3://${SOURCE}`, `s3://${target}`], {
    env: MOTO_AWS_ENV,
  });
}

async function countObjects(s3: S3Client, bucket: string): Promise<number> {
  let count = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    count += page.KeyCount ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return count;
}

function merge(...counts: Record<string, number>[]): Record<string, number> {
  const merged: Record<string, number> = {};
  for (const count of counts) for (const [operation, n] of Object.entries(count)) merged[operation] = (merged[operation] ?? 0) + n;
  return merged;
}

function print(results: Measurement[]): void {
  console.log(`\nCopy of ${OBJECTS} objects on moto (same emulator, same objects; requests counted by moto's recorder)\n`);
  for (const r of results) {
    const total = Object.values(r.requests).reduce((a, b) => a + b, 0);
    const breakdown = Object.entries(r.requests).sort(([, a], [, b]) => b - a).map(([op, n]) => `${op} ${n}`).join(', ');
    console.log(`${r.tool}`);
    console.log(`  ${r.objects} objects in ${r.seconds.toFixed(1)} s = ${(r.objects / r.seconds).toFixed(0)} objects/s; ${total} requests (${breakdown})`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
