/**
 * Region data on S3: a region's data is the set of objects under one URI
 * (`s3://bucket/regions/PA/v3`). Checked before anything changes, backed up,
 * replaced, and restored byte for byte from the backup.
 */
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { parseS3Uri, type S3Location } from '../s3-uri.js';
import { abortable, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';
import { settleAll } from '../settle.js';
import { heartbeatWhile, throwIfCancelled } from './heartbeat.js';
import { passTestGate } from './test-gates.js';

export interface RegionDataCheck {
  aws: AwsConnection;
  uri: string;
  /** Input field to blame when the data is missing or not TopoJSON. */
  field: string;
}

export interface RegionDataSummary {
  uri: string;
  objects: number;
  bytes: number;
  /** The TopoJSON files found, relative to the URI. */
  topojson: string[];
}

export interface CopyRegionData {
  aws: AwsConnection;
  from: string;
  to: string;
  /** Also delete what lies under `to` but not under `from`, so `to` ends as an exact copy. */
  exact: boolean;
}

export interface BackupUriRequest {
  aws: AwsConnection;
  /** The region's data. */
  uri: string;
  /** yyyy-mm-dd, as the seed names backups. */
  date: string;
}

export interface CopiedRegionData {
  from: string;
  to: string;
  copied: number;
  bytes: number;
  removed: number;
}

const COPY_CONCURRENCY = 16;

export function createRegionDataActivities(deps: AwsDeps) {
  const clients = clientFactory(deps);

  return {
    /** Refuses (InvalidInput) data that is missing or whose .json/.topojson files are not TopoJSON topologies. */
    async inspectRegionData({ aws, uri, field }: RegionDataCheck): Promise<RegionDataSummary> {
      const s3 = clients(aws).s3;
      const location = parseOrRefuse(uri, field);
      let checked = 0;
      return heartbeatWhile(
        async () => {
          const objects = await listAll(s3, location, field);
          if (objects.length === 0) throw invalidInput(field, `no data at ${uri}`);
          const topojson = objects.map((o) => relativeKey(location, o.Key!)).filter((key) => /\.(topo)?json$/i.test(key));
          if (topojson.length === 0) throw invalidInput(field, `${uri} holds no .topojson or .json file`);
          for (const key of topojson) {
            const problem = topologyProblem(await readText(s3, location.bucket, location.prefix + key));
            if (problem) throw invalidInput(field, `${uri}/${key} is not valid TopoJSON: ${problem}`);
            checked++;
          }
          return { uri, objects: objects.length, bytes: objects.reduce((sum, o) => sum + (o.Size ?? 0), 0), topojson };
        },
        () => checked,
      );
    },

    /**
     * The seed's backup URI, `<uri>-backup-<yyyy-mm-dd>`, beside the region's
     * folder (never inside it); when that already holds objects (an earlier
     * update that day), the first free `-2`, `-3`, ... instead, so no backup is overwritten.
     */
    async freeBackupUri({ aws, uri, date }: BackupUriRequest): Promise<string> {
      const s3 = clients(aws).s3;
      const base = `${uri.replace(/\/+$/, '')}-backup-${date}`;
      for (let n = 1; ; n++) {
        const candidate = n === 1 ? base : `${base}-${n}`;
        if (!(await holdsObjects(s3, parseOrRefuse(candidate, 'uri')))) return candidate;
      }
    },

    /**
     * Copies every object under `from` to the same relative key under `to`,
     * server-side; with `exact`, then deletes what `to` has beyond that (only
     * under `to`'s folder). Repeating it gives the same result, so a retry
     * after a crash is safe. A cancel stops it between objects, once the copies
     * in flight have finished: the caller's undo then sees every copy that happened.
     */
    async copyRegionData({ aws, from, to, exact }: CopyRegionData): Promise<CopiedRegionData> {
      const s3 = clients(aws).s3;
      const source = parseOrRefuse(from, 'from');
      const target = parseOrRefuse(to, 'to');
      if (exact && source.bucket === target.bucket && source.prefix.startsWith(target.prefix)) {
        throw invalidInput('to', `${from} lies inside ${to}: an exact copy would delete its own source`);
      }
      let copied = 0;
      // Heartbeats from the first listing to the last delete: a slow page must not look like a dead worker.
      return heartbeatWhile(
        async () => {
          const objects = await listAll(s3, source, 'from');
          const limit = pLimit(COPY_CONCURRENCY);
          await settleAll(
            objects.map((object) =>
              limit(async () => {
                throwIfCancelled();
                if (copied > 0) await passTestGate(copyGate(from), copied);
                const key = relativeKey(source, object.Key!);
                // Not abortable: a copy the server already took would land after the undo started.
                await callAws(`copy ${from}/${key} to ${to}/${key}`, () =>
                  s3.send(
                    new CopyObjectCommand({
                      Bucket: target.bucket,
                      Key: target.prefix + key,
                      CopySource: encodeURIComponent(`${source.bucket}/${object.Key}`),
                      MetadataDirective: 'COPY',
                      TaggingDirective: 'COPY',
                    }),
                  ),
                );
                copied++;
              }),
            ),
          );
          const removed = exact ? await removeExtra(s3, target, new Set(objects.map((o) => relativeKey(source, o.Key!)))) : 0;
          return { from, to, copied, bytes: objects.reduce((sum, o) => sum + (o.Size ?? 0), 0), removed };
        },
        () => copied,
      );
    },
  };
}

export type RegionDataActivities = ReturnType<typeof createRegionDataActivities>;

/** The test gate every copy out of `from` holds at once it has copied something: a test can then act mid-copy. */
export function copyGate(from: string): string {
  return `copy-from.${from.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
}

/** What is wrong with a TopoJSON document, or null: a Topology with named objects and an arcs array. */
export function topologyProblem(text: string): string | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const topology = doc as { type?: unknown; objects?: unknown; arcs?: unknown };
  if (topology.type !== 'Topology') return `type is ${JSON.stringify(topology.type)}, not "Topology"`;
  if (typeof topology.objects !== 'object' || topology.objects === null || Object.keys(topology.objects).length === 0)
    return 'it has no objects';
  if (!Array.isArray(topology.arcs)) return 'it has no arcs array';
  return null;
}

function parseOrRefuse(uri: string, field: string): S3Location {
  try {
    return parseS3Uri(uri);
  } catch (err) {
    throw invalidInput(field, (err as Error).message);
  }
}

function relativeKey(location: S3Location, key: string): string {
  return key.slice(location.prefix.length);
}

/** Region data is a handful of files, so one listing in memory is fine; pages keep each request bounded. */
async function listAll(s3: S3Client, location: S3Location, field: string): Promise<_Object[]> {
  const objects: _Object[] = [];
  let token: string | undefined;
  do {
    const page = await callAws(
      `list s3://${location.bucket}/${location.prefix}`,
      () => s3.send(new ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix, ContinuationToken: token }), abortable()),
      field,
    );
    objects.push(...(page.Contents ?? []));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

async function holdsObjects(s3: S3Client, location: S3Location): Promise<boolean> {
  const page = await callAws(`list s3://${location.bucket}/${location.prefix}`, () =>
    s3.send(new ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix, MaxKeys: 1 }), abortable()),
  );
  return (page.KeyCount ?? page.Contents?.length ?? 0) > 0;
}

async function readText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const object = await callAws(`read s3://${bucket}/${key}`, () =>
    s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), abortable()),
  );
  return (await object.Body?.transformToString()) ?? '';
}

async function removeExtra(s3: S3Client, target: S3Location, keep: Set<string>): Promise<number> {
  const extra = (await listAll(s3, target, 'to')).map((o) => o.Key!).filter((key) => !keep.has(relativeKey(target, key)));
  for (let i = 0; i < extra.length; i += 1000) {
    throwIfCancelled();
    const batch = extra.slice(i, i + 1000);
    await callAws(`delete ${batch.length} objects under s3://${target.bucket}/${target.prefix}`, () =>
      s3.send(
        new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        abortable(),
      ),
    );
  }
  return extra.length;
}
