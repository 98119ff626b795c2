/**
 * region-data-update end to end through the CLI: real S3 (moto), a real
 * region_config table (PostgreSQL), the rolling restart as a real child run.
 */
import assert from 'node:assert/strict';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import pg from 'pg';
import type { RunStatus } from '../src/messages.js';
import { parseS3Uri } from '../src/s3-uri.js';
import { copyGate } from '../src/activities/region-data.js';
import { topology } from '../src/stack/sandbox/regions.js';
import type { RegionDataUpdateResult } from '../src/workflows/region-data-update.js';
import { sandbox, testStack } from './setup.js';
import { runbook } from './helpers/cli.js';
import { queryStatus, temporalClient, waitForStatus } from './helpers/wait.js';
import { armGate } from './helpers/gates.js';
import { worker } from './helpers/worker.js';

let counter = 0;
/** Fresh region ids per test, so runs never share regions or rows. */
const freshId = (label: string) => `${label}${process.pid % 10_000}n${++counter}`;
const today = () => new Date().toISOString().slice(0, 10);
/** Sorts before the tiles, so the replace copies it among its first objects. */
const ONLY_IN_NEW = '0-only-in-new.pbf';

function s3(): S3Client {
  return new S3Client({ region: 'us-east-1', endpoint: testStack().awsEndpoint, forcePathStyle: true });
}

/** Every object under a URI, by key relative to it, with its bytes. */
async function snapshot(uri: string): Promise<Record<string, string>> {
  const { bucket, prefix } = parseS3Uri(uri);
  const page = await s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const files: Record<string, string> = {};
  for (const object of page.Contents ?? []) {
    const body = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: object.Key }));
    files[object.Key!.slice(prefix.length)] = await body.Body!.transformToString();
  }
  return files;
}

/** Every object under a URI, by relative key, as ETag and size: for single-part objects the ETag is the MD5 of the bytes. */
async function fingerprint(uri: string): Promise<Record<string, string>> {
  const { bucket, prefix } = parseS3Uri(uri);
  const client = s3();
  const files: Record<string, string> = {};
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) files[object.Key!.slice(prefix.length)] = `${object.ETag} ${object.Size}`;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  client.destroy();
  return files;
}

/** `count` small tiles under a URI (not TopoJSON, so preflight reads only the layers). */
async function putTiles(uri: string, count: number, label: string, extra: string[] = []): Promise<void> {
  const { bucket, prefix } = parseS3Uri(uri);
  const client = s3();
  const limit = pLimit(16);
  const keys = [...Array.from({ length: count }, (_, i) => `tiles/${String(i).padStart(4, '0')}.pbf`), ...extra];
  await Promise.all(
    keys.map((key) => limit(() => client.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + key, Body: `${label} ${key}` })))),
  );
  client.destroy();
}

async function readObject(uri: string, key: string): Promise<string | null> {
  const { bucket, prefix } = parseS3Uri(uri);
  try {
    const object = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: prefix + key }));
    return await object.Body!.transformToString();
  } catch {
    return null;
  }
}

async function regionRows(ids: string[]): Promise<Record<string, { s3Uri: string; version: number }>> {
  const db = new pg.Client({ connectionString: sandbox().regions.databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; s3_uri: string; version: number }>(
      'SELECT id, s3_uri, version FROM region_config WHERE id = ANY($1)',
      [ids],
    );
    return Object.fromEntries(rows.map((r) => [r.id, { s3Uri: r.s3_uri, version: r.version }]));
  } finally {
    await db.end();
  }
}

/** Runs of the child restart since a moment, from visibility. */
async function restartRunsSince(env: string, since: Date): Promise<{ status: string }[]> {
  const client = await temporalClient();
  const runs: { status: string }[] = [];
  for await (const run of client.workflow.list({
    query: `WorkflowId = 'rolling-restart:${env}:app' AND StartTime > '${since.toISOString()}'`,
  }))
    runs.push({ status: run.status.name });
  return runs;
}

interface Scenario {
  ids: string[];
  regions: { id: string; newDataUri: string; new?: boolean }[];
  uris: Record<string, string>;
  before: Record<string, Record<string, string>>;
  newData: Record<string, Record<string, string>>;
}

/** Two existing regions (versions 2 and 5) and one new one, each with new data. */
async function scenario(): Promise<Scenario> {
  const [a, b, c] = [freshId('A'), freshId('B'), freshId('C')];
  const first = await sandbox().regions.addRegion(a, 2);
  const second = await sandbox().regions.addRegion(b, 5);
  const added = await sandbox().regions.addNewData(c);
  const uris = { [a]: first.uri, [b]: second.uri };
  return {
    ids: [a, b, c],
    regions: [
      { id: a, newDataUri: first.newDataUri },
      { id: b, newDataUri: second.newDataUri },
      { id: c, newDataUri: added, new: true },
    ],
    uris,
    before: { [a]: await snapshot(first.uri), [b]: await snapshot(second.uri) },
    newData: { [a]: await snapshot(first.newDataUri), [b]: await snapshot(second.newDataUri), [c]: await snapshot(added) },
  };
}

const idOf = (env: string, s: Scenario) => `region-data-update:${env}:${[...s.ids].sort().join('+')}`;
const start = (env: string, s: Scenario, ...extra: string[]) =>
  runbook(['start', 'region-data-update', '--env', env, '--set', `regions=${JSON.stringify(s.regions)}`, ...extra], { as: 'ops' });

async function approve(id: string, checkpoint: string): Promise<void> {
  const result = await runbook(['approve', id, '--checkpoint', checkpoint], { as: 'qa-lead' });
  assert.equal(result.exitCode, 0, result.stderr);
}

async function assertUpdated(s: Scenario, status: RunStatus): Promise<void> {
  const [a, b, c] = s.ids as [string, string, string];
  assert.equal(status.phase, 'succeeded', status.error ?? '');
  for (const id of [a, b]) {
    assert.deepEqual(await snapshot(s.uris[id]!), s.newData[id], `${id}'s data is the new data`);
    assert.deepEqual(await snapshot(`${s.uris[id]}-backup-${today()}`), s.before[id], `${id}'s backup is its old data`);
  }
  const rows = await regionRows(s.ids);
  assert.equal(rows[a]?.version, 3, 'existing region bumped by one');
  assert.equal(rows[b]?.version, 6, 'existing region bumped by one');
  assert.deepEqual(rows[c], { s3Uri: s.regions[2]!.newDataUri, version: 1 }, 'the new region is added and not bumped');
  const report = (status.result as RegionDataUpdateResult).regions;
  assert.deepEqual(
    report.map((r) => [r.id, r.oldVersion, r.newVersion, r.backupUri]),
    [
      [a, 2, 3, `${s.uris[a]}-backup-${today()}`],
      [b, 5, 6, `${s.uris[b]}-backup-${today()}`],
      [c, null, 1, null],
    ],
  );
}

describe('region-data-update', () => {
  afterEach(async () => {
    // A failed test must not leave a run holding the environment for the next one.
    const client = await temporalClient();
    for await (const run of client.workflow.list({ query: `RunbookName = 'region-data-update' AND ExecutionStatus = 'Running'` })) {
      await client.workflow.getHandle(run.workflowId).cancel();
      await client.workflow
        .getHandle(run.workflowId)
        .result()
        .catch(() => undefined);
    }
  });

  it('backs up, replaces the data, restarts as a child run, and after QA bumps the existing regions only', async function () {
    this.timeout(180_000);
    const s = await scenario();
    const id = idOf('sandbox', s);
    const startedAt = new Date();
    const started = await start('sandbox', s, '--wait');
    assert.equal(started.exitCode, 0, started.stderr);
    assert.match(started.stdout, /Waiting at checkpoint 'test-maps'/);
    assert.deepEqual(await snapshot(s.uris[s.ids[0]!]!), s.before[s.ids[0]!], 'nothing changes before the test maps are approved');

    await approve(id, 'test-maps');
    const atQa = await waitForStatus(id, (st) => st.waitingFor?.checkpoint === 'qa', 120_000);
    assert.match(atQa.steps.find((st) => st.name === 'restart-services')!.detail!, /new tasks serving/);
    assert.deepEqual(await restartRunsSince('sandbox', startedAt), [{ status: 'COMPLETED' }], 'one child restart ran');
    assert.equal((await regionRows(s.ids))[s.ids[0]!]?.version, 3, 'versions are bumped with the restart, so QA sees the new data');
    const steps = atQa.steps.map((st) => st.name);
    assert.ok(steps.indexOf('restart-services') < steps.indexOf('bump-versions') && steps.indexOf('bump-versions') < steps.indexOf('qa'));

    await approve(id, 'qa');
    await assertUpdated(
      s,
      await waitForStatus(id, (st) => st.phase === 'succeeded' || st.phase === 'rolled-back' || st.phase === 'failed'),
    );
  });

  it('a QA rejection restores the data byte for byte and the versions bumped before QA, and restarts again', async function () {
    this.timeout(180_000);
    const s = await scenario();
    const id = idOf('sandbox', s);
    const startedAt = new Date();
    assert.equal((await start('sandbox', s, '--wait')).exitCode, 0);
    await approve(id, 'test-maps');
    await waitForStatus(id, (st) => st.waitingFor?.checkpoint === 'qa', 120_000);
    assert.equal((await regionRows(s.ids))[s.ids[0]!]?.version, 3, 'bumped before QA');

    const reject = await runbook(['reject', id, '--checkpoint', 'qa', '--reason', 'county layer fails to load'], { as: 'qa-lead' });
    assert.equal(reject.exitCode, 0, reject.stderr);
    const watched = await runbook(['watch', id]);
    assert.equal(watched.exitCode, 1, 'a rolled-back run exits 1');
    const status = await waitForStatus(id, (st) => st.phase !== 'running' && st.phase !== 'waiting');
    assert.equal(status.phase, 'rolled-back', status.error ?? '');

    const [a, b, c] = s.ids as [string, string, string];
    for (const region of [a, b]) assert.deepEqual(await snapshot(s.uris[region]!), s.before[region], `${region} is back to its old data`);
    const rows = await regionRows(s.ids);
    assert.equal(rows[a]?.version, 2);
    assert.equal(rows[b]?.version, 5);
    assert.equal(rows[c], undefined, 'the new region is removed again');
    assert.deepEqual(
      await restartRunsSince('sandbox', startedAt),
      [{ status: 'COMPLETED' }, { status: 'COMPLETED' }],
      'restarted for the new data and again for the old',
    );
  });

  it('a cancel during the replace waits for the copies in flight to stop, then restores the region byte for byte', async function () {
    this.timeout(300_000);
    const id = freshId('BIG');
    const { uri, newDataUri } = await sandbox().regions.addRegion(id, 4);
    // More objects than the copy runs at once, so the cancel lands with copies done, in flight and not started.
    await putTiles(uri, 200, 'old');
    await putTiles(newDataUri, 200, 'new', [ONLY_IN_NEW]);
    const before = await fingerprint(uri);
    assert.equal(Object.keys(before).length, 202);
    const runId = `region-data-update:sandbox:${id}`;
    // The replace holds once it has copied something, until the cancel stops it: no race with the copy finishing first.
    const midCopy = armGate(copyGate(newDataUri));
    try {
      const started = await runbook(
        ['start', 'region-data-update', '--env', 'sandbox', '--set', `regions=${JSON.stringify([{ id, newDataUri }])}`, '--wait'],
        { as: 'ops' },
      );
      assert.equal(started.exitCode, 0, started.stderr);
      await approve(runId, 'test-maps');
      await midCopy.reached(300_000);
      const midway = await fingerprint(uri);
      const tilesReplaced = Object.keys(before).filter((key) => key.startsWith('tiles/') && midway[key] !== before[key]).length;
      assert.equal(await readObject(uri, ONLY_IN_NEW), `new ${ONLY_IN_NEW}`, 'the replace has begun');
      assert.ok(tilesReplaced < 200, `the replace is under way, not done (${tilesReplaced} of 200 tiles new)`);

      const cancelled = await runbook(['cancel', runId, '--reason', 'wrong data set'], { as: 'ops' });
      assert.equal(cancelled.exitCode, 0, cancelled.stderr);
      const status = await waitForStatus(runId, (st) => st.phase !== 'running' && st.phase !== 'waiting', 300_000);
      assert.equal(status.phase, 'cancelled', status.error ?? '');
      assert.equal(status.steps.find((st) => st.name === 'replace-data')?.status, 'compensated');
    } finally {
      midCopy.open();
    }

    const backupUri = `${uri}-backup-${today()}`;
    assert.deepEqual(await fingerprint(backupUri), before, 'the backup is the old data');
    assert.deepEqual(await fingerprint(uri), before, 'the region is byte-identical to its backup (the file only the new data had is gone)');
    assert.equal(await readObject(uri, 'tiles/0000.pbf'), 'old tiles/0000.pbf');

    // The copy in flight was cancelled and had stopped before the restore was scheduled.
    const history = await (await temporalClient()).workflow.getHandle(runId).fetchHistory();
    const events = history.events ?? [];
    const copies = events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'copyRegionData')
      .map((e) => {
        const input = JSON.parse(Buffer.from(e.activityTaskScheduledEventAttributes!.input!.payloads![0]!.data!).toString()) as {
          from: string;
        };
        return { eventId: Number(e.eventId), from: input.from };
      });
    const replace = copies.find((c) => c.from === newDataUri)!;
    const restore = copies.find((c) => c.from === backupUri)!;
    assert.ok(replace && restore, JSON.stringify(copies));
    const replaceCancelled = events.find((e) => Number(e.activityTaskCanceledEventAttributes?.scheduledEventId) === replace.eventId);
    assert.ok(replaceCancelled, 'the replace copy ended cancelled, stopped between objects');
    assert.ok(Number(replaceCancelled.eventId) < restore.eventId, 'the restore was scheduled only after the replace copy had stopped');
  });

  it('two updates of one region on the same day keep both backups, and files the new data lacks stay (exact is opt-in)', async function () {
    this.timeout(400_000);
    const id = freshId('TWICE');
    const { uri, newDataUri } = await sandbox().regions.addRegion(id, 2);
    await sandbox().regions.putObject(`${parseS3Uri(uri).prefix}notes/readme.txt`, 'kept: the new data lacks me');
    const original = await fingerprint(uri);
    const runId = `region-data-update:sandbox:${id}`;
    const update = async (dataUri: string) => {
      const started = await runbook(
        ['start', 'region-data-update', '--env', 'sandbox', '--set', `regions=${JSON.stringify([{ id, newDataUri: dataUri }])}`, '--wait'],
        { as: 'ops' },
      );
      assert.equal(started.exitCode, 0, started.stderr);
      await approve(runId, 'test-maps');
      await waitForStatus(runId, (st) => st.waitingFor?.checkpoint === 'qa', 180_000);
      await approve(runId, 'qa');
      const status = await waitForStatus(runId, (st) => st.phase !== 'running' && st.phase !== 'waiting', 120_000);
      assert.equal(status.phase, 'succeeded', status.error ?? '');
      return (status.result as RegionDataUpdateResult).regions[0]!;
    };

    const first = await update(newDataUri);
    assert.equal(first.backupUri, `${uri}-backup-${today()}`);
    assert.equal(await readObject(uri, 'notes/readme.txt'), 'kept: the new data lacks me', 'cp --recursive leaves extra files alone');
    const afterFirst = await fingerprint(uri);

    const secondData = `s3://${sandbox().regions.bucket}/incoming/${id}-second`;
    for (const layer of ['counties', 'blockgroups'])
      await sandbox().regions.putObject(`incoming/${id}-second/${layer}.topojson`, JSON.stringify(topology(layer, `${id} second`)));
    const second = await update(secondData);
    assert.equal(second.backupUri, `${uri}-backup-${today()}-2`, 'the second backup gets a new suffix');
    assert.deepEqual(await fingerprint(first.backupUri!), original, 'the first backup still holds the original data');
    assert.deepEqual(await fingerprint(second.backupUri!), afterFirst, 'the second backup holds the data the first update left');
    assert.deepEqual([first.newVersion, second.newVersion], [3, 4]);
    assert.equal(await readObject(uri, 'notes/readme.txt'), 'kept: the new data lacks me');
  });

  it('refuses db-uri on production, and production without a succeeded staging run, changing nothing', async () => {
    const s = await scenario();
    const dbUri = await start('production', s, '--set', 'mode=db-uri');
    assert.equal(dbUri.exitCode, 2);
    assert.match(dbUri.stderr, /mode: db-uri changes region_config\.s3_uri, .*production is protected, so only s3-overwrite is allowed/);

    const noStaging = await start('production', s);
    assert.equal(noStaging.exitCode, 2, noStaging.stdout + noStaging.stderr);
    assert.match(
      noStaging.stdout + noStaging.stderr,
      new RegExp(
        `requireStagingRun: production takes region data only after it succeeded on staging: no succeeded, non-dry region-data-update run on staging covers ${s.ids.join(', ')}`,
      ),
    );

    const waived = await start('production', s, '--set', 'requireStagingRun=false');
    assert.equal(waived.exitCode, 2);
    assert.match(waived.stderr, /stagingOverrideReason: required when requireStagingRun is false/);

    for (const region of s.ids.slice(0, 2)) assert.deepEqual(await snapshot(s.uris[region]!), s.before[region]);
    const rows = await regionRows(s.ids);
    assert.equal(rows[s.ids[0]!]?.version, 2);
    assert.equal(rows[s.ids[2]!], undefined);
  });

  it('lets production start once staging succeeded for the same regions', async function () {
    this.timeout(180_000);
    const s = await scenario();
    const stagingId = idOf('staging', s);
    assert.equal((await start('staging', s, '--wait')).exitCode, 0);
    await approve(stagingId, 'test-maps');
    await waitForStatus(stagingId, (st) => st.waitingFor?.checkpoint === 'qa', 120_000);
    await approve(stagingId, 'qa');
    await waitForStatus(stagingId, (st) => st.phase === 'succeeded');

    // Production (sharing this sandbox's rows) now passes preflight for the regions that existed, and waits for test maps.
    const prod = { ...s, ids: s.ids.slice(0, 2), regions: s.regions.slice(0, 2) };
    const production = await start('production', prod, '--wait');
    assert.equal(production.exitCode, 0, production.stdout + production.stderr);
    const status = await queryStatus(idOf('production', prod));
    assert.equal(status.waitingFor?.checkpoint, 'test-maps');
    assert.match(
      status.steps.find((s) => s.name === 'preflight')!.detail!,
      new RegExp(`staging run ${stagingId.replace(/[+]/g, '\\+')} succeeded`),
    );
  });

  it('refuses new data that is missing or not TopoJSON, changing nothing', async () => {
    const s = await scenario();
    const [a] = s.ids as [string];
    const missing = await start('sandbox', {
      ...s,
      regions: [{ id: a, newDataUri: `s3://${sandbox().regions.bucket}/incoming/nothing-here` }],
    });
    assert.equal(missing.exitCode, 2);
    assert.match(missing.stdout + missing.stderr, /regions\.0\.newDataUri: no data at s3:\/\/sandbox-region-data\/incoming\/nothing-here/);

    await sandbox().regions.putObject(
      `incoming/broken-${a}/counties.topojson`,
      JSON.stringify({ type: 'FeatureCollection', features: [] }),
    );
    const broken = await start('sandbox', {
      ...s,
      regions: [{ id: a, newDataUri: `s3://${sandbox().regions.bucket}/incoming/broken-${a}` }],
    });
    assert.equal(broken.exitCode, 2);
    assert.match(
      broken.stdout + broken.stderr,
      /regions\.0\.newDataUri: .*counties\.topojson is not valid TopoJSON: type is "FeatureCollection", not "Topology"/,
    );

    assert.deepEqual(await snapshot(s.uris[a]!), s.before[a]);
    assert.equal((await regionRows([a]))[a]?.version, 2);
  });

  it('ends as an undisturbed run when the worker is SIGKILLed at each step boundary', async function () {
    this.timeout(600_000);
    const s = await scenario();
    const id = idOf('sandbox', s);
    const killAndRestart = async () => {
      await worker().kill('SIGKILL');
      await worker().start();
    };
    const stepDone = (name: string) => (st: RunStatus) => ['done', 'skipped'].includes(st.steps.find((x) => x.name === name)!.status);

    assert.equal((await start('sandbox', s, '--wait')).exitCode, 0);
    await killAndRestart(); // preflight done, waiting at test-maps
    await approve(id, 'test-maps');
    await waitForStatus(id, stepDone('back-up-data'), 60_000);
    await killAndRestart();
    await waitForStatus(id, stepDone('replace-data'), 60_000);
    await killAndRestart();
    await waitForStatus(id, stepDone('add-new-regions'), 60_000);
    await killAndRestart(); // the child restart is under way or about to start
    await waitForStatus(id, (st) => st.waitingFor?.checkpoint === 'qa', 180_000);
    await killAndRestart();
    await approve(id, 'qa');
    await assertUpdated(s, await waitForStatus(id, (st) => st.phase !== 'running' && st.phase !== 'waiting', 120_000));
  });
});
