/**
 * bucket-swap's copy engine against s5cmd and `aws s3 sync`, on a fast real
 * S3 server (versitygw, posix backend; installed on first use, see
 * src/stack/fast-s3.ts), the same objects, one run. Every tool's requests go
 * through one counting proxy (src/stack/s3-proxy.ts), so they are counted the
 * same way, from outside; BENCH_DIRECT=1 times them straight against the
 * server instead (requests then not counted).
 *
 * Mixes: 10,000 x 4 KB, 1,000 x 1 MB, 4 x 1 GB (the runbook copies those in
 * parallel UploadPartCopy parts), then the worker's memory over a 100,000-
 * object copy.
 *
 *   npm run bench:bucket-swap
 *   BENCH_MIXES=small,medium BENCH_RSS_OBJECTS=0 npm run bench:bucket-swap   # a subset
 *   BENCH_SMALL=2000 BENCH_MEDIUM=200 BENCH_LARGE='2x512MiB' BENCH_RSS_OBJECTS=20000 npm run bench:bucket-swap   # smaller mixes
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pLimit from 'p-limit';
import { awsClients } from '../src/activities/aws.js';
import { createS3Activities, type CopyResult, type VerifiedCopy } from '../src/activities/s3.js';
import { parseBytes } from '../src/bytes.js';
import { formatBytes } from '../src/format.js';
import { FAST_S3_CREDENTIALS, resolveFastS3Tools, startFastS3, type FastS3Tools } from '../src/stack/fast-s3.js';
import { defaultToolsDir } from '../src/stack/index.js';
import { freePorts } from '../src/stack/ports.js';
import { startS3Proxy, type S3Proxy, type S3ProxyCounts } from '../src/stack/s3-proxy.js';

const REGION = 'us-east-1';
const MiB = 2 ** 20;
/** The runbook's ceiling: the catalog's most, as many as s5cmd's workers. */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);
const S5CMD_WORKERS = Number(process.env.BENCH_S5CMD_WORKERS ?? 256);
const SMALL_COUNT = Number(process.env.BENCH_SMALL ?? 10_000);
const MEDIUM_COUNT = Number(process.env.BENCH_MEDIUM ?? 1000);
const MIXES = (process.env.BENCH_MIXES ?? 'small,medium,large').split(',');
/** Which copiers run (awscli is slow: leave it out while tuning). */
const TOOLS = new Set((process.env.BENCH_TOOLS ?? 'runbook,s5cmd,awscli').split(','));
const [LARGE_COUNT, LARGE_SIZE] = (process.env.BENCH_LARGE ?? '4x1GiB').split('x').map((v, i) => (i === 0 ? Number(v) : parseBytes(v))) as [
  number,
  number,
];
/** A reference tool that runs longer than this fails the bench rather than hanging it. */
const TOOL_TIMEOUT_MS = Number(process.env.BENCH_TOOL_TIMEOUT_S ?? 900) * 1000;
const RSS_OBJECTS = Number(process.env.BENCH_RSS_OBJECTS ?? 100_000);
/**
 * The runbook's plan for the large mix: copied in parts (the catalog's default copies objects up to 5 GiB whole),
 * BENCH_PART_SIZE each (16 MiB: a 1 GiB object is 64 UploadPartCopy requests, at most 16 in flight for all objects).
 */
const LARGE_PLAN = { multipartThreshold: 64 * MiB, partSize: parseBytes(process.env.BENCH_PART_SIZE ?? '16MiB') };
const DEFAULT_PLAN = { multipartThreshold: 5 * 2 ** 30, partSize: 512 * MiB };

interface Mix {
  name: string;
  count: number;
  size: number;
  plan: { multipartThreshold: number; partSize: number };
}

interface Measurement {
  mix: string;
  tool: string;
  objects: number;
  bytes: number;
  seconds: number;
  requests?: S3ProxyCounts;
  note?: string;
}

const MIX_DEFS: Record<string, Mix> = {
  small: { name: `${SMALL_COUNT.toLocaleString('en-US')} x 4 KB`, count: SMALL_COUNT, size: 4096, plan: DEFAULT_PLAN },
  medium: { name: `${MEDIUM_COUNT.toLocaleString('en-US')} x 1 MB`, count: MEDIUM_COUNT, size: MiB, plan: DEFAULT_PLAN },
  large: { name: `${LARGE_COUNT} x ${formatBytes(LARGE_SIZE)}`, count: LARGE_COUNT, size: LARGE_SIZE, plan: LARGE_PLAN },
};

async function main(): Promise<void> {
  const log = (line: string) => console.error(line);
  const tools = await resolveFastS3Tools(defaultToolsDir, log);
  const dir = mkdtempSync(join(tmpdir(), 'bench-bucket-swap-'));
  const [port] = await freePorts(1);
  const server = await startFastS3({
    versitygw: tools.versitygw,
    port: port!,
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'versitygw.log'),
  });
  const proxy = await startS3Proxy(server.endpoint);
  const endpoint = process.env.BENCH_DIRECT ? server.endpoint : proxy.endpoint;
  Object.assign(process.env, FAST_S3_CREDENTIALS, { AWS_REGION: REGION });
  const s3 = new S3Client({ endpoint: server.endpoint, region: REGION, forcePathStyle: true });
  const results: Measurement[] = [];
  let rss: string | undefined;
  try {
    log(
      `versitygw ${server.endpoint} on ${dir}; tools: ${JSON.stringify(tools)}; runbook concurrency ${CONCURRENCY}, s5cmd ${S5CMD_WORKERS} workers`,
    );
    for (const name of MIXES) {
      const mix = MIX_DEFS[name];
      if (!mix) throw new Error(`unknown mix ${name} (small, medium, large)`);
      results.push(...(await benchMix(s3, tools, proxy, endpoint, name, mix, log)));
      printMix(results.filter((r) => r.mix === mix.name));
    }
    if (RSS_OBJECTS > 0) rss = await benchMemory(s3, endpoint, log);
  } finally {
    s3.destroy();
    await proxy.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n=== summary ===');
  for (const mix of new Set(results.map((r) => r.mix))) printMix(results.filter((r) => r.mix === mix));
  if (rss) console.log(`\n${rss}`);
}

async function benchMix(
  s3: S3Client,
  tools: FastS3Tools,
  proxy: S3Proxy,
  endpoint: string,
  key: string,
  mix: Mix,
  log: (line: string) => void,
): Promise<Measurement[]> {
  const source = `src-${key}`;
  log(`\n[${mix.name}] writing s3://${source}...`);
  await fill(s3, source, mix.count, mix.size, tools, endpoint);
  const bytes = mix.count * mix.size;
  const measured: Measurement[] = [];
  const measure = async (tool: string, target: string | undefined, run: () => Promise<string | undefined>) => {
    if (target) await s3.send(new CreateBucketCommand({ Bucket: target }));
    log(`[${mix.name}] ${tool}...`);
    await proxy.reset();
    const started = process.hrtime.bigint();
    const note = await run();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const requests = process.env.BENCH_DIRECT ? undefined : await proxy.counts();
    if (target) {
      const copied = await countObjects(s3, target);
      if (copied !== mix.count) throw new Error(`${tool} copied ${copied} of ${mix.count} objects`);
    }
    const measurement = {
      mix: mix.name,
      tool,
      objects: mix.count,
      bytes,
      seconds,
      ...(requests ? { requests } : {}),
      ...(note ? { note } : {}),
    };
    measured.push(measurement);
    log(
      `[${mix.name}] ${tool}: ${seconds.toFixed(2)} s, ${(mix.count / seconds).toFixed(0)} objects/s${requests ? `; ${requestSummary(requests)}` : ''}${note ? `; ${note}` : ''}`,
    );
  };
  const activities = createS3Activities({ aws: awsClients });
  const aws = { region: REGION, endpoint };
  if (TOOLS.has('runbook')) await measureRunbook();
  if (TOOLS.has('s5cmd')) await measureS5cmd();
  if (TOOLS.has('awscli')) await measureAwscli();
  return measured;

  async function measureRunbook(): Promise<void> {
    if (mix.plan !== DEFAULT_PLAN) {
      // What an operator gets without setting multipartThreshold: objects up to 5 GiB copied whole, as s5cmd copies them.
      await measure('runbook copy, catalog default plan', `${key}-runbook-default`, async () => {
        const result: CopyResult = await new MockActivityEnvironment().run(activities.copyBucketObjects, {
          aws,
          source,
          target: `${key}-runbook-default`,
          concurrency: CONCURRENCY,
          ...DEFAULT_PLAN,
        });
        return `${result.copied} whole, ${result.multipart} in parts`;
      });
    }
    await measure(`runbook copy (${CONCURRENCY} in flight at most)`, `${key}-runbook`, async () => {
      const result: CopyResult = await new MockActivityEnvironment().run(activities.copyBucketObjects, {
        aws,
        source,
        target: `${key}-runbook`,
        concurrency: CONCURRENCY,
        ...mix.plan,
      });
      return `${result.copied} whole, ${result.multipart} in parts; limit ${result.throttling?.current} (lowest ${result.throttling?.lowest}), ${result.throttling?.throttled} throttled`;
    });
    await measure('runbook verify (of that copy)', undefined, async () => {
      const verified: VerifiedCopy = await new MockActivityEnvironment().run(activities.verifyBucketCopy, {
        aws,
        source,
        target: `${key}-runbook`,
        ...mix.plan,
      });
      return `${verified.objects} objects match (${verified.multipart} by size and part count)`;
    });
  }

  async function measureS5cmd(): Promise<void> {
    await measure(`s5cmd cp (${S5CMD_WORKERS} workers)`, `${key}-s5cmd`, async () => {
      await execa(
        tools.s5cmd,
        ['--endpoint-url', endpoint, '--numworkers', String(S5CMD_WORKERS), 'cp', `s3://${source}/*`, `s3://${key}-s5cmd/`],
        { env: FAST_S3_CREDENTIALS, timeout: TOOL_TIMEOUT_MS },
      );
      return undefined;
    });
  }

  async function measureAwscli(): Promise<void> {
    await measure('aws s3 sync (awscli defaults)', `${key}-awscli`, async () => {
      await execa(tools.aws, ['--endpoint-url', endpoint, 's3', 'sync', '--only-show-errors', `s3://${source}`, `s3://${key}-awscli`], {
        env: FAST_S3_CREDENTIALS,
        timeout: TOOL_TIMEOUT_MS,
      });
      return undefined;
    });
  }
}

/** `count` objects of `size` bytes under a few prefixes; large ones uploaded by s5cmd (multipart) from one local file. */
async function fill(s3: S3Client, bucket: string, count: number, size: number, tools: FastS3Tools, endpoint: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  if (size > 64 * MiB) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-large-'));
    try {
      const file = join(dir, 'blob');
      await pipeline(randomChunks(size), createWriteStream(file));
      for (let i = 0; i < count; i++) {
        await execa(tools.s5cmd, ['--endpoint-url', endpoint, 'cp', file, `s3://${bucket}/large/object-${i}.bin`], {
          env: FAST_S3_CREDENTIALS,
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  const limit = pLimit(32);
  const body = Buffer.alloc(size, 'x');
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      limit(() =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: `uploads/${i % 10}/${Math.floor(i / 10) % 10}/object-${i}`,
            Body: body,
            ContentType: 'application/octet-stream',
            Metadata: { seq: String(i) },
          }),
        ),
      ),
    ),
  );
}

/** `size` random bytes, 8 MiB at a time. */
function* randomChunks(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= 8 * MiB) yield randomBytes(Math.min(left, 8 * MiB));
}

/** The worker's resident memory over a copy of RSS_OBJECTS objects: idle before, highest during (sampled every 100 ms). */
async function benchMemory(s3: S3Client, endpoint: string, log: (line: string) => void): Promise<string> {
  const source = 'src-memory';
  log(`\n[memory] writing ${RSS_OBJECTS} objects to s3://${source}...`);
  await s3.send(new CreateBucketCommand({ Bucket: source }));
  const limit = pLimit(32);
  const body = Buffer.alloc(256, 'm');
  await Promise.all(
    Array.from({ length: RSS_OBJECTS }, (_, i) =>
      limit(() => s3.send(new PutObjectCommand({ Bucket: source, Key: `m/${i % 100}/o-${i}`, Body: body }))),
    ),
  );
  await s3.send(new CreateBucketCommand({ Bucket: 'memory-runbook' }));
  (globalThis as { gc?: () => void }).gc?.();
  const idle = process.memoryUsage().rss;
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const started = process.hrtime.bigint();
  log(`[memory] copying (idle RSS ${formatBytes(idle)})...`);
  const result: CopyResult = await new MockActivityEnvironment().run(createS3Activities({ aws: awsClients }).copyBucketObjects, {
    aws: { region: REGION, endpoint },
    source,
    target: 'memory-runbook',
    concurrency: CONCURRENCY,
    ...DEFAULT_PLAN,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  return (
    `worker memory, copy of ${result.objects.toLocaleString('en-US')} objects in ${seconds.toFixed(1)} s (${(result.objects / seconds).toFixed(0)} objects/s): ` +
    `RSS idle ${formatBytes(idle)}, peak ${formatBytes(peak)}, +${formatBytes(peak - idle)} (goal: within 100 MB)`
  );
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

function printMix(results: Measurement[]): void {
  if (!results.length) return;
  console.log(
    `\n${results[0]!.mix} (${formatBytes(results[0]!.bytes)}) on versitygw${process.env.BENCH_DIRECT ? '' : ', requests counted by the proxy in front of it'}`,
  );
  const s5cmd = results.find((r) => r.tool.startsWith('s5cmd'));
  const copy = results.find((r) => r.tool.startsWith('runbook copy ('));
  for (const r of results) {
    const perSecond = r.objects / r.seconds;
    const ratio = s5cmd && r !== s5cmd && !r.tool.includes('verify') ? `, ${(s5cmd.seconds / r.seconds).toFixed(2)}x s5cmd` : '';
    const share = copy && r.tool.includes('verify') ? `, ${((100 * r.seconds) / copy.seconds).toFixed(0)}% of the copy's time` : '';
    console.log(
      `  ${r.tool.padEnd(36)} ${r.seconds.toFixed(2).padStart(7)} s ${perSecond.toFixed(0).padStart(6)} objects/s ${(r.bytes / 1e6 / r.seconds).toFixed(1).padStart(8)} MB/s${ratio}${share}`,
    );
    if (r.requests) console.log(`      requests: ${requestSummary(r.requests)}`);
    if (r.note) console.log(`      ${r.note}`);
  }
}

function requestSummary(counts: S3ProxyCounts): string {
  const answered = Object.entries(counts.answered).sort(([, a], [, b]) => b - a);
  const total = answered.reduce((sum, [, n]) => sum + n, 0);
  const peak = Object.entries(counts.peakInFlight)
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
  return `${total} (${answered.map(([op, n]) => `${op} ${n}`).join(', ')}); most in flight: ${peak}`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
