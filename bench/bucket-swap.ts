/**
 * bucket-swap's copy engine against s5cmd and `aws s3 sync`, on a fast real
 * S3 server (versitygw, posix backend; installed on first use, see
 * src/stack/fast-s3.ts), the same objects, one run. Every tool's requests are
 * counted the same way, from outside, by the server's own access log; the CPU
 * each side spent (the copier, the server, the machine) is printed with them.
 *
 * Mixes: 10,000 x 4 KB, 1,000 x 1 MB, 4 x 1 GB (the runbook copies those in
 * parallel UploadPartCopy parts), then the worker's memory over a 100,000-
 * object copy.
 *
 * Each tool runs BENCH_ROUNDS times (2) per mix, taking turns, and the
 * table compares each tool's best run.
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
import {
  FAST_S3_CREDENTIALS,
  resolveFastS3Tools,
  startFastS3,
  type AnsweredRequests,
  type FastS3Server,
  type FastS3Tools,
} from '../src/stack/fast-s3.js';
import { defaultToolsDir } from '../src/stack/index.js';
import { freePorts } from '../src/stack/ports.js';
import { cpuMeter, type CpuSpent } from './cpu-time.js';

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
/** Runs of each tool per mix, taking turns (A B B A): the table compares each tool's best. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
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
  requests: AnsweredRequests;
  cpu: CpuSpent;
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
    accessLog: join(dir, 'access.log'),
  });
  const { endpoint } = server;
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
      results.push(...(await benchMix(s3, tools, server, join(dir, 'data'), name, mix, log)));
      printMix(results.filter((r) => r.mix === mix.name));
    }
    if (RSS_OBJECTS > 0) rss = await benchMemory(s3, endpoint, log);
  } finally {
    s3.destroy();
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
  server: FastS3Server,
  dataDir: string,
  key: string,
  mix: Mix,
  log: (line: string) => void,
): Promise<Measurement[]> {
  const source = `src-${key}`;
  const { endpoint } = server;
  log(`\n[${mix.name}] writing s3://${source}...`);
  await fill(s3, source, mix.count, mix.size, tools, endpoint);
  const bytes = mix.count * mix.size;
  const measured: Measurement[] = [];
  const measure = async (tool: string, target: string | undefined, run: () => Promise<string | undefined>) => {
    if (target) await s3.send(new CreateBucketCommand({ Bucket: target }));
    log(`[${mix.name}] ${tool}...`);
    await server.requestsAnswered();
    const cpuSpent = await cpuMeter(server.pid);
    const started = process.hrtime.bigint();
    const note = await run();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = await cpuSpent();
    const requests = await server.requestsAnswered();
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
      requests,
      cpu,
      ...(note ? { note } : {}),
    };
    measured.push(measurement);
    log(
      `[${mix.name}] ${tool}: ${seconds.toFixed(2)} s, ${(mix.count / seconds).toFixed(0)} objects/s; ${requestSummary(requests)}${note ? `; ${note}` : ''}`,
    );
  };
  // A bucket of the posix backend is a folder: dropping a copy's target this way keeps the disk from filling up
  // (4 GiB per copy of the large mix) without sending the server requests between measurements.
  const dropBucket = (bucket: string) => rmSync(join(dataDir, bucket), { recursive: true, force: true });
  const activities = createS3Activities({ aws: awsClients });
  const aws = { region: REGION, endpoint };
  const runs: Record<string, (round: number) => Promise<void>> = { runbook: measureRunbook, s5cmd: measureS5cmd, awscli: measureAwscli };
  const order = ['runbook', 's5cmd', 'awscli'].filter((tool) => TOOLS.has(tool));
  // Both the server and the copiers get faster as they warm up, so each tool runs ROUNDS times, in turns that
  // alternate who goes first (A B B A ...), and the table compares each tool's best run.
  for (let round = 0; round < ROUNDS; round++) {
    for (const tool of round % 2 === 0 ? order : [...order].reverse()) await runs[tool]!(round);
  }
  return measured;

  async function measureRunbook(round: number): Promise<void> {
    if (mix.plan !== DEFAULT_PLAN) {
      // What an operator gets without setting multipartThreshold: objects up to 5 GiB copied whole, as s5cmd copies them.
      const target = `${key}-runbook-default-${round}`;
      await measure('runbook copy, catalog default plan', target, async () => {
        const result: CopyResult = await new MockActivityEnvironment().run(activities.copyBucketObjects, {
          aws,
          source,
          target,
          concurrency: CONCURRENCY,
          ...DEFAULT_PLAN,
        });
        return `${result.copied} whole, ${result.multipart} in parts`;
      });
      dropBucket(target);
    }
    const target = `${key}-runbook-${round}`;
    await measure(`runbook copy (${CONCURRENCY} in flight at most)`, target, async () => {
      const result: CopyResult = await new MockActivityEnvironment().run(activities.copyBucketObjects, {
        aws,
        source,
        target,
        concurrency: CONCURRENCY,
        ...mix.plan,
      });
      return `${result.copied} whole, ${result.multipart} in parts; limit ${result.throttling?.current} (lowest ${result.throttling?.lowest}), ${result.throttling?.throttled} throttled`;
    });
    await measure('runbook verify (of that copy)', undefined, async () => {
      const verified: VerifiedCopy = await new MockActivityEnvironment().run(activities.verifyBucketCopy, {
        aws,
        source,
        target,
        ...mix.plan,
      });
      return `${verified.objects} objects match (${verified.multipart} by size and part count)`;
    });
    dropBucket(target);
  }

  async function measureS5cmd(round: number): Promise<void> {
    const target = `${key}-s5cmd-${round}`;
    await measure(`s5cmd cp (${S5CMD_WORKERS} workers)`, target, async () => {
      await execa(
        tools.s5cmd,
        ['--endpoint-url', endpoint, '--numworkers', String(S5CMD_WORKERS), 'cp', `s3://${source}/*`, `s3://${target}/`],
        { env: FAST_S3_CREDENTIALS, timeout: TOOL_TIMEOUT_MS },
      );
      return undefined;
    });
    dropBucket(target);
  }

  async function measureAwscli(round: number): Promise<void> {
    const target = `${key}-awscli-${round}`;
    await measure('aws s3 sync (awscli defaults)', target, async () => {
      await execa(tools.aws, ['--endpoint-url', endpoint, 's3', 'sync', '--only-show-errors', `s3://${source}`, `s3://${target}`], {
        env: FAST_S3_CREDENTIALS,
        timeout: TOOL_TIMEOUT_MS,
      });
      return undefined;
    });
    dropBucket(target);
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

/** Each tool's best run of the mix, with the times of all its runs. */
function printMix(results: Measurement[]): void {
  if (!results.length) return;
  console.log(`\n${results[0]!.mix} (${formatBytes(results[0]!.bytes)}) on versitygw, requests counted by its access log`);
  const tools = [...new Set(results.map((r) => r.tool))];
  const best = (tool: string | undefined) =>
    results.filter((r) => r.tool === tool).reduce<Measurement | undefined>((b, r) => (!b || r.seconds < b.seconds ? r : b), undefined);
  const s5cmd = best(tools.find((t) => t.startsWith('s5cmd')));
  const awscli = best(tools.find((t) => t.startsWith('aws ')));
  const copy = best(tools.find((t) => t.startsWith('runbook copy (')));
  for (const tool of tools) {
    const r = best(tool)!;
    const runs = results.filter((m) => m.tool === tool).map((m) => m.seconds.toFixed(2));
    const perSecond = r.objects / r.seconds;
    const against = (other: Measurement | undefined, name: string) =>
      other && r !== other && !r.tool.includes('verify') ? `, ${(other.seconds / r.seconds).toFixed(2)}x ${name}` : '';
    const share = copy && r.tool.includes('verify') ? `, ${((100 * r.seconds) / copy.seconds).toFixed(0)}% of the copy's time` : '';
    console.log(
      `  ${r.tool.padEnd(36)} ${r.seconds.toFixed(2).padStart(7)} s ${perSecond.toFixed(perSecond < 10 ? 2 : 0).padStart(6)} objects/s ` +
        `${(r.bytes / 1e6 / r.seconds).toFixed(1).padStart(8)} MB/s${against(s5cmd, 's5cmd')}${r.tool.startsWith('runbook') ? against(awscli, 'awscli') : ''}${share}`,
    );
    if (runs.length > 1) console.log(`      best of ${runs.length} runs: ${runs.join(' s, ')} s`);
    console.log(`      requests: ${requestSummary(r.requests)}`);
    console.log(`      CPU: ${cpuSummary(r)}`);
    if (r.note) console.log(`      ${r.note}`);
  }
}

function requestSummary(counts: AnsweredRequests): string {
  const answered = Object.entries(counts.byOperation).sort(([, a], [, b]) => b - a);
  const total = answered.reduce((sum, [, n]) => sum + n, 0);
  const errors = Object.entries(counts.errors).map(([error, n]) => `${error} x${n}`);
  return `${total} (${answered.map(([op, n]) => `${op} ${n}`).join(', ')})${errors.length ? `; errors: ${errors.join(', ')}` : ''}`;
}

/** The copier's CPU per object (for s5cmd and awscli: the machine's less the server's and this idle process's). */
function cpuSummary({ tool, cpu, objects }: Measurement): string {
  // The runbook copies in this process; s5cmd and awscli are processes of their own.
  const copier = tool.startsWith('runbook') ? cpu.self : cpu.machine - cpu.server - cpu.self;
  const perObject = (seconds: number) => `${((1000 * seconds) / objects).toFixed(objects < 100 ? 0 : 2)} ms/object`;
  return (
    `copier ${copier.toFixed(1)} s (${perObject(copier)}), server ${cpu.server.toFixed(1)} s (${perObject(cpu.server)}), ` +
    `machine ${cpu.machine.toFixed(1)} of ${cpu.available.toFixed(1)} s`
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
