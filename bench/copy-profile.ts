/**
 * Where the copy's CPU goes, per CopyObject: fills a bucket on versitygw
 * (src/stack/fast-s3.ts), then runs bucket-swap's copy activity under the V8
 * profiler (only the copy, not the filling) and prints the self time by
 * package and by function, divided by the objects copied. The profile is
 * written too, for Chrome's DevTools.
 *
 *   node dist/bench/copy-profile.js                  # 2,000 x 4 KB, 64 in flight, direct
 *   PROFILE_OBJECTS=5000 PROFILE_CONCURRENCY=128 PROFILE_PROXY=1 node dist/bench/copy-profile.js
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import pLimit from 'p-limit';
import { awsClients } from '../src/activities/aws.js';
import { createS3Activities, type CopyResult } from '../src/activities/s3.js';
import { FAST_S3_CREDENTIALS, resolveFastS3Tools, startFastS3 } from '../src/stack/fast-s3.js';
import { defaultToolsDir } from '../src/stack/index.js';
import { freePorts } from '../src/stack/ports.js';
import { startS3Proxy } from '../src/stack/s3-proxy.js';

const REGION = 'us-east-1';
const OBJECTS = Number(process.env.PROFILE_OBJECTS ?? 2000);
const CONCURRENCY = Number(process.env.PROFILE_CONCURRENCY ?? 64);
const TOP = Number(process.env.PROFILE_TOP ?? 25);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

async function main(): Promise<void> {
  const log = (line: string) => console.error(line);
  const tools = await resolveFastS3Tools(defaultToolsDir, log);
  const dir = mkdtempSync(join(tmpdir(), 'copy-profile-'));
  const [port] = await freePorts(1);
  const server = await startFastS3({
    versitygw: tools.versitygw,
    port: port!,
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'versitygw.log'),
    accessLog: join(dir, 'access.log'),
  });
  const proxy = process.env.PROFILE_PROXY ? await startS3Proxy(server.endpoint) : undefined;
  Object.assign(process.env, FAST_S3_CREDENTIALS, { AWS_REGION: REGION });
  const s3 = new S3Client({ endpoint: server.endpoint, region: REGION, forcePathStyle: true });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: 'src' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'dst' }));
    const limit = pLimit(32);
    const body = Buffer.alloc(4096, 'x');
    log(`writing ${OBJECTS} objects...`);
    await Promise.all(
      Array.from({ length: OBJECTS }, (_, i) =>
        limit(() => s3.send(new PutObjectCommand({ Bucket: 'src', Key: `p/${i % 10}/o-${i}`, Body: body }))),
      ),
    );
    const { copyBucketObjects } = createS3Activities({ aws: awsClients });
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await session.post('Profiler.start');
    const result: CopyResult = await new MockActivityEnvironment().run(copyBucketObjects, {
      aws: { region: REGION, endpoint: proxy?.endpoint ?? server.endpoint },
      source: 'src',
      target: 'dst',
      concurrency: CONCURRENCY,
      multipartThreshold: 5 * 2 ** 30,
      partSize: 512 * 2 ** 20,
    });
    const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    session.disconnect();
    const file = join(tmpdir(), `copy-${Date.now()}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(
      `copied ${result.objects} objects in ${seconds.toFixed(2)} s (${(result.objects / seconds).toFixed(0)} objects/s), ` +
        `${CONCURRENCY} in flight at most${proxy ? ', through the counting proxy (its own thread)' : ''}; process CPU ${(cpuMs / 1000).toFixed(2)} s = ` +
        `${(cpuMs / result.objects).toFixed(3)} ms per object (${((100 * cpuMs) / 1000 / seconds).toFixed(0)} % of one core); profile: ${file}`,
    );
    report(profile, result.objects);
  } finally {
    s3.destroy();
    await proxy?.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Self time by package and by function, in microseconds per object. */
function report(profile: Profile, objects: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    total += us;
    const pkg = packageOf(url, functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const name = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  }
  const print = (title: string, rows: Map<string, number>, top: number) => {
    console.log(`\n${title} (self time; µs per object; share of sampled time)`);
    for (const [name, us] of [...rows].sort(([, a], [, b]) => b - a).slice(0, top))
      console.log(`  ${(us / objects).toFixed(1).padStart(8)} µs ${((100 * us) / total).toFixed(1).padStart(5)} %  ${name}`);
  };
  print('by package', byPackage, 20);
  print('by function', byFunction, TOP);
}

function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const ours = /\/dist\/((?:src|bench)\/[^/]+(?:\/[^/]+)?)/.exec(url)?.[1];
  return ours ?? url;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
