/**
 * Who uses a bucket, as far as the runbook can see: the ECS services that
 * write it (seed 002: "stop all processes that have the ability to update
 * data in these locations"), which bucket their configuration names, and the
 * evidence of reads it can find (access logs, request metrics). What it cannot
 * see it says plainly, so the person approving the delete knows what to check.
 */
import { DescribeTaskDefinitionCommand } from '@aws-sdk/client-ecs';
import { GetObjectCommand, ListBucketMetricsConfigurationsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { abortable, awsFailure, callAws, clientFactory, type AwsConnection, type AwsDeps } from './aws.js';
import { describeService } from './ecs.js';
import { errorName, httpStatus } from './s3-bucket-settings.js';
import { formatCount } from '../format.js';

export interface BucketWriterRef {
  cluster: string;
  service: string;
}

export interface BucketWriter extends BucketWriterRef {
  desiredCount: number;
  runningCount: number;
  taskDefinition: string;
  /** Container variables whose value names one of the buckets asked about (bucket names are not secrets; other values never leave). */
  names: { variable: string; bucket: string }[];
}

export interface ReadEvidenceArgs {
  aws: AwsConnection;
  source: string;
  target: string;
  /** Where the source's access logs go, if it logs. */
  logging?: { bucket: string; prefix: string };
  /** Evidence from this time on (ISO). */
  since: string;
}

/** Access log objects read at most: enough to see who reads, bounded whatever the traffic. */
const LOG_OBJECTS_READ = 20;

export function createBucketUserActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    /** Each writer service: its counts, task definition, and the variables that name the old or new bucket. */
    async inspectBucketWriters(args: { aws: AwsConnection; writers: BucketWriterRef[]; buckets: string[] }): Promise<BucketWriter[]> {
      const ecs = clients(args.aws).ecs;
      const found: BucketWriter[] = [];
      for (const [i, writer] of args.writers.entries()) {
        const service = await describeService(ecs, writer, `writers.${i}`);
        const definition = await callAws(`describe the task definition of ${writer.service}`, () =>
          ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: service.taskDefinition! }), abortable()),
        );
        const names = (definition.taskDefinition?.containerDefinitions ?? []).flatMap((c) =>
          (c.environment ?? []).flatMap((e) => {
            const bucket = args.buckets.find((b) => e.value !== undefined && namesBucket(e.value, b));
            return bucket && e.name ? [{ variable: e.name, bucket }] : [];
          }),
        );
        found.push({
          ...writer,
          desiredCount: service.desiredCount ?? 0,
          runningCount: service.runningCount ?? 0,
          taskDefinition: service.taskDefinition!,
          names,
        });
      }
      return found;
    },

    /** Plain sentences of what shows whether the old or the new bucket is read. */
    async readBucketEvidence(args: ReadEvidenceArgs): Promise<string[]> {
      const s3 = clients(args.aws).s3;
      return [
        ...(await accessLogEvidence(s3, args)),
        ...(await metricsEvidence(s3, args.source)),
        "CDN: this runbook cannot read CloudFront; check that the distribution's origin is s3://" + args.target,
      ];
    },
  };
}

export type BucketUserActivities = ReturnType<typeof createBucketUserActivities>;

/** `value` is the bucket's name, or an s3:// URL or ARN of it, not merely a longer name that begins with it. */
export function namesBucket(value: string, bucket: string): boolean {
  const escaped = bucket.replace(/[.]/g, '\\.');
  return new RegExp(`(^|[/:])${escaped}($|[/])`).test(value);
}

/** S3 access log objects are named `<prefix>YYYY-mm-DD-HH-MM-SS-<unique>`: the time of delivery sorts them. */
function logKeyAt(prefix: string, iso: string): string {
  return `${prefix}${iso.slice(0, 19).replace(/[T:]/g, '-')}`;
}

async function accessLogEvidence(s3: S3Client, args: ReadEvidenceArgs): Promise<string[]> {
  if (!args.logging) return [`access logs: none configured on s3://${args.source}`];
  const { bucket, prefix } = args.logging;
  const where = `s3://${bucket}/${prefix}`;
  let keys: string[];
  try {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, StartAfter: logKeyAt(prefix, args.since), MaxKeys: 1000 }),
      abortable(),
    );
    keys = (page.Contents ?? []).map((o) => o.Key!);
  } catch (err) {
    if (httpStatus(err) === 403 || httpStatus(err) === 404)
      return [`access logs: go to ${where}, which this runbook cannot list (${errorName(err)})`];
    throw awsFailure(err, `list the access logs in ${where}`);
  }
  if (!keys.length)
    return [`access logs: none delivered to ${where} since ${args.since} (S3 delivers them with a delay of minutes to hours)`];
  const requests = new Map<string, number>();
  for (const key of keys.slice(-LOG_OBJECTS_READ)) {
    const answer = await callAws(`read access log ${key}`, () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), abortable()));
    for (const line of (await answer.Body!.transformToString()).split('\n')) {
      // Fields: owner, bucket, [time], ...
      const logged = line.split(' ')[1];
      if (logged) requests.set(logged, (requests.get(logged) ?? 0) + 1);
    }
  }
  const read =
    keys.length > LOG_OBJECTS_READ
      ? `the newest ${LOG_OBJECTS_READ} of ${formatCount(keys.length)} log objects`
      : `${formatCount(keys.length)} log object${keys.length === 1 ? '' : 's'}`;
  return [
    `access logs (${read} in ${where} since ${args.since}): ${formatCount(requests.get(args.source) ?? 0)} requests to s3://${args.source}, ` +
      `${formatCount(requests.get(args.target) ?? 0)} to s3://${args.target}`,
  ];
}

async function metricsEvidence(s3: S3Client, bucket: string): Promise<string[]> {
  try {
    const answer = await s3.send(new ListBucketMetricsConfigurationsCommand({ Bucket: bucket }), abortable());
    const ids = (answer.MetricsConfigurationList ?? []).map((m) => m.Id!);
    if (!ids.length) return [`request metrics: none configured on s3://${bucket}`];
    return [
      `request metrics: configured on s3://${bucket} (${ids.join(', ')}); this runbook does not read CloudWatch metrics, so compare AllRequests of both buckets there`,
    ];
  } catch (err) {
    if (httpStatus(err) === 501 || httpStatus(err) === 403)
      return [`request metrics: could not be listed on s3://${bucket} (${errorName(err)})`];
    throw awsFailure(err, `list the request metrics of s3://${bucket}`);
  }
}
