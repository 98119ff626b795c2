/**
 * Seed 003, "Updating Region Data":
 *
 *   make a test map of each affected region on staging
 *   per region: back up its data (cp --recursive <uri> <uri>-backup-<yyyy-mm-dd>)
 *     and copy the new data over it (or, on staging only, point region_config.s3_uri at it)
 *   restart the services so they load it (the rolling restart, as a child run)
 *   as part of the restart, bump region_config.version of every updated region that already existed, so cached maps refresh
 *   QA opens the test maps and edits them
 *
 * Only the regions named are touched: the copy writes under each region's
 * folder and, like the seed's `cp --recursive`, leaves other files there alone
 * unless `exact` is asked for; a backup never overwrites an earlier one.
 * A QA rejection, a timeout, a cancel or any failure after the data changed
 * (once the copy in flight has stopped) restores every region from its backup
 * byte for byte (or the old s3_uri) and its version, and restarts the services again.
 */
import { executeChild, patched, workflowInfo } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import { runWorkflowId, type RunbookInput } from '../messages.js';
import type { Login } from '../activities/pg-connect.js';
import type { RegionConfigActivities, RegionConfigDb, RegionRow } from '../activities/region-config.js';
import type { RegionDataActivities } from '../activities/region-data.js';
import type { FoundRun, RunsActivities } from '../activities/runs.js';
import { definePlan, refuseIf, runRunbook, stepActivities, type RunbookOf } from './engine/index.js';
import { settleAll } from '../settle.js';
import { rollingRestart, type RollingRestartResult } from './rolling-restart.js';

export interface RegionUpdate {
  id: string;
  newDataUri: string;
  /** Not yet in region_config: added at version 1, nothing to back up or bump. */
  isNew: boolean;
}

export interface RegionDataUpdateParams {
  aws: AwsConnection;
  regions: RegionUpdate[];
  mode: 's3-overwrite' | 'db-uri';
  /** Also delete files in a region's folder that the new data lacks (unset in runs resolved before it existed: true). */
  exact?: boolean;
  /** Where this update must have succeeded first (production: staging). */
  stagingEnv?: string;
  requireStagingRun: boolean;
  /** Why the staging rule is waived, recorded with the run. */
  stagingOverrideReason?: string;
  /** The database holding region_config. */
  database: Login;
  /** The rolling restart's own inputs (it validates them again as a child run) and the service it holds. */
  restart: { service: string; inputs: Record<string, unknown> };
}

export interface RegionReport {
  id: string;
  /** Where the region's data lives after the run. */
  uri: string;
  newDataUri: string;
  backupUri: string | null;
  oldVersion: number | null;
  newVersion: number;
  isNew: boolean;
}

export interface RegionDataUpdateResult {
  mode: RegionDataUpdateParams['mode'];
  regions: RegionReport[];
  staging: FoundRun | { waived: string } | null;
  restart: { newTaskArns: string[]; stoppedTaskArns: string[] };
}

export const regionDataUpdatePlan = definePlan({
  steps: ['preflight', 'test-maps', 'back-up-data', 'replace-data', 'add-new-regions', 'restart-services', 'bump-versions', 'qa'],
  checkpoints: ['test-maps', 'qa'],
});

/** Copies heartbeat every 2 s; the heartbeat timeout bounds how soon a cancel reaches a copy (the worker sends at most one per 0.8 of it). */
const regionData = stepActivities<RegionDataActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { maximumInterval: '30 seconds', maximumAttempts: 10 },
});
const regionConfig = stepActivities<RegionConfigActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumInterval: '10 seconds', maximumAttempts: 10 },
});
const runs = stepActivities<RunsActivities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } });

interface Preflight {
  existing: (RegionUpdate & { row: RegionRow })[];
  added: RegionUpdate[];
  staging: RegionDataUpdateResult['staging'];
}

/** The engine, typed for this plan: a misspelt step name does not compile. */
type Update = RunbookOf<RegionDataUpdateParams, typeof regionDataUpdatePlan>;

/**
 * Runs started since this marker: backups get a free suffix, `exact` is
 * opt-in, regions must not overlap, parallel copies settle before an undo,
 * and the versions are bumped before QA (undone on a rejection).
 */
const SCOPED_AND_SEED_ORDER = 'region-data-scoped-and-seed-order';

interface Backup {
  id: string;
  uri: string;
  backupUri: string;
}

/** What preflight found and what the run will do about it; every step reads from here. */
interface RegionRun {
  rb: Update;
  p: RegionDataUpdateParams;
  db: RegionConfigDb;
  /** See SCOPED_AND_SEED_ORDER. */
  scoped: boolean;
  found: Preflight;
  existing: Preflight['existing'];
  added: RegionUpdate[];
  /** Every region named, and the existing ones, for the summaries. */
  ids: string;
  existingIds: string;
  /** s3-overwrite: the data is copied over; db-uri: region_config points at the new data. */
  overwrite: boolean;
}

export async function regionDataUpdate(input: RunbookInput): Promise<RegionDataUpdateResult> {
  return runRunbook(input, regionDataUpdatePlan, async (rb: Update) => {
    const scoped = patched(SCOPED_AND_SEED_ORDER);
    const run = planUpdate(rb, scoped, await checkRegions(rb, scoped));
    await makeTestMaps(run);
    const backups = await backUpData(run);
    await replaceData(run, backups);
    await addNewRegions(run);
    const restart = await restartServices(run);
    const bumped = await bumpVersionsAndQa(run);
    return summarize(run, backups, restart, bumped);
  });
}

async function checkRegions(rb: Update, scoped: boolean): Promise<Preflight> {
  const p = rb.params;
  return rb.read(
    'preflight',
    `check regions ${p.regions.map((r) => r.id).join(', ')}: known to region_config, new data present and valid TopoJSON${p.stagingEnv ? `, already updated on ${p.stagingEnv}` : ''}`,
    () => preflight(rb, scoped),
    { detail: (f) => preflightDetail(f) },
  );
}

function planUpdate(rb: Update, scoped: boolean, found: Preflight): RegionRun {
  const p = rb.params;
  return {
    rb,
    p,
    db: { aws: p.aws, login: p.database },
    scoped,
    found,
    existing: found.existing,
    added: found.added,
    ids: p.regions.map((r) => r.id).join(', '),
    existingIds: found.existing.map((r) => r.id).join(', ') || 'none',
    overwrite: p.mode === 's3-overwrite',
  };
}

async function makeTestMaps({ rb, ids }: RegionRun): Promise<void> {
  await rb.checkpoint(
    'test-maps',
    `Before the data changes: make a test map of each region (${ids}) on staging, adding counties and blockgroups to a few districts; approve when they are saved.`,
  );
}

/** `cp --recursive <uri> <uri>-backup-<yyyy-mm-dd>`, dated when the test maps are approved. */
async function backUpData(run: RegionRun): Promise<Backup[]> {
  const { rb, scoped, existing, existingIds, overwrite } = run;
  const date = new Date().toISOString().slice(0, 10);
  const seedBackupUri = (uri: string) => `${scoped ? uri.replace(/\/+$/, '') : uri}-backup-${date}`;
  const planned: Backup[] = existing.map((r) => ({ id: r.id, uri: r.row.s3Uri, backupUri: seedBackupUri(r.row.s3Uri) }));
  if (!overwrite || !planned.length) {
    rb.skip('back-up-data', overwrite ? 'no existing region to back up' : 'db-uri mode leaves the old data where it is');
    return planned;
  }
  return rb.change(
    'back-up-data',
    `back up the data of ${existingIds} to <uri>-backup-${date}${scoped ? ' (or the first free -2, -3, ...)' : ''}`,
    () => backUp(rb, planned, date, scoped),
    {
      detail: (done) => done.map((b) => `${b.backupUri} (${b.copied} objects)`).join('; '),
      dryResult: planned.map((b) => ({ ...b, copied: 0 })),
    },
  );
}

/** The new data over the old (or, db-uri, region_config pointed at it); undone by restoring every region and restarting again. */
async function replaceData(run: RegionRun, backups: Backup[]): Promise<void> {
  const { rb, p, db, scoped, existing, existingIds, overwrite } = run;
  if (!existing.length) return rb.skip('replace-data', 'no existing region to update');
  const all = scoped ? settleAll : <T>(work: Promise<T>[]) => Promise.all(work);
  if (overwrite) {
    const exact = scoped ? p.exact === true : true;
    await rb.change(
      'replace-data',
      `copy the new data over the data of ${existingIds}${exact ? ', deleting files the new data lacks' : ''}`,
      () => all(existing.map((r) => regionData.copyRegionData({ aws: p.aws, from: r.newDataUri, to: r.row.s3Uri, exact }))),
      {
        undo: {
          summary: `restore ${existingIds} from their backups and restart ${p.restart.service}`,
          run: async () => {
            // Exact: the region ends byte-identical to its backup, also where the new data added files.
            await all(backups.map((b) => regionData.copyRegionData({ aws: p.aws, from: b.backupUri, to: b.uri, exact: true })));
            await restartAsChild(rb, 'reload the restored data');
          },
        },
      },
    );
    return;
  }
  const changes = existing.map((r) => ({ id: r.id, from: r.row.s3Uri, to: r.newDataUri }));
  await rb.change(
    'replace-data',
    `point region_config.s3_uri of ${existingIds} at the new data`,
    () => regionConfig.setRegionUris({ db, changes }),
    {
      undo: {
        summary: `point ${existingIds} back at their old data and restart ${p.restart.service}`,
        run: async () => {
          await regionConfig.setRegionUris({ db, changes: changes.map((c) => ({ id: c.id, from: c.to, to: c.from })) });
          await restartAsChild(rb, 'reload the restored data');
        },
      },
    },
  );
}

async function addNewRegions({ rb, db, added }: RegionRun): Promise<void> {
  if (!added.length) return rb.skip('add-new-regions', 'no new region');
  const addedIds = added.map((r) => r.id).join(', ');
  await rb.change(
    'add-new-regions',
    `add ${addedIds} to region_config at version 1`,
    () => regionConfig.addRegions({ db, regions: added.map((r) => ({ id: r.id, s3Uri: r.newDataUri })) }),
    {
      undo: {
        summary: `remove ${addedIds} from region_config`,
        run: () => regionConfig.removeRegions({ db, ids: added.map((r) => r.id) }),
      },
    },
  );
}

async function restartServices({ rb, p }: RegionRun): Promise<RegionDataUpdateResult['restart']> {
  return rb.change(
    'restart-services',
    `restart ${p.restart.service} so it loads the new data (rolling restart, as a child run)`,
    () => restartAsChild(rb, 'load the new data'),
    {
      detail: (r) => `${r.newTaskArns.length} new tasks serving, ${r.stoppedTaskArns.length} old tasks stopped`,
      dryResult: { newTaskArns: [], stoppedTaskArns: [] },
    },
  );
}

/**
 * The seed bumps the versions as part of the restart, so QA sees the new data
 * rather than cached maps; runs started before SCOPED_AND_SEED_ORDER bumped them after QA.
 */
async function bumpVersionsAndQa(run: RegionRun): Promise<RegionRow[]> {
  if (!run.scoped) {
    await qa(run);
    return bumpVersions(run);
  }
  const bumped = await bumpVersions(run);
  await qa(run);
  return bumped;
}

async function bumpVersions({ rb, db, scoped, existing, existingIds }: RegionRun): Promise<RegionRow[]> {
  if (!existing.length) {
    rb.skip('bump-versions', 'only new regions: nothing cached to refresh');
    return [];
  }
  const bumps = existing.map((r) => ({ id: r.id, from: r.row.version }));
  return rb.change(
    'bump-versions',
    `bump region_config.version of ${existingIds} by one so cached maps refresh`,
    () => regionConfig.bumpVersions({ db, bumps }),
    {
      detail: (rows) => rows.map((r) => `${r.id} v${r.version}`).join(', '),
      dryResult: [],
      // Only runs since the marker bump before QA, where a rejection must put the versions back too.
      ...(scoped
        ? { undo: { summary: `put region_config.version of ${existingIds} back`, run: () => regionConfig.restoreVersions({ db, bumps }) } }
        : {}),
    },
  );
}

async function qa({ rb, ids }: RegionRun): Promise<void> {
  await rb.checkpoint(
    'qa',
    `QA on ${rb.env}: open the test maps of ${ids}, check each loads, and edit a block group and a county; approve if nothing breaks.`,
  );
}

function summarize(
  { p, found, existing, added, overwrite }: RegionRun,
  backups: Backup[],
  restart: RegionDataUpdateResult['restart'],
  bumped: RegionRow[],
): RegionDataUpdateResult {
  return {
    mode: p.mode,
    staging: found.staging,
    restart: { newTaskArns: restart.newTaskArns, stoppedTaskArns: restart.stoppedTaskArns },
    regions: [
      ...existing.map((r) => ({
        id: r.id,
        uri: overwrite ? r.row.s3Uri : r.newDataUri,
        newDataUri: r.newDataUri,
        backupUri: overwrite ? backups.find((b) => b.id === r.id)!.backupUri : null,
        oldVersion: r.row.version,
        newVersion: bumped.find((b) => b.id === r.id)?.version ?? r.row.version,
        isNew: false,
      })),
      ...added.map((r) => ({
        id: r.id,
        uri: r.newDataUri,
        newDataUri: r.newDataUri,
        backupUri: null,
        oldVersion: null,
        newVersion: 1,
        isNew: true,
      })),
    ],
  };
}

/** Backs every region up into a backup folder of its own (a free one, in runs since the marker), all copies settled. */
async function backUp(rb: Update, planned: Backup[], date: string, scoped: boolean): Promise<(Backup & { copied: number })[]> {
  const aws = rb.params.aws;
  if (!scoped) {
    const copies = await Promise.all(planned.map((b) => regionData.copyRegionData({ aws, from: b.uri, to: b.backupUri, exact: true })));
    return planned.map((b, i) => ({ ...b, copied: copies[i]!.copied }));
  }
  const backups = await settleAll(
    planned.map(async (b) => ({ ...b, backupUri: await regionData.freeBackupUri({ aws, uri: b.uri, date }) })),
  );
  const copies = await settleAll(backups.map((b) => regionData.copyRegionData({ aws, from: b.uri, to: b.backupUri, exact: false })));
  return backups.map((b, i) => ({ ...b, copied: copies[i]!.copied }));
}

/** The rolling restart runs as a child under its own workflow ID, so it also holds the service's lock. */
async function restartAsChild(rb: Update, why: string): Promise<RegionDataUpdateResult['restart']> {
  const restart = rb.params.restart;
  const result: RollingRestartResult = await executeChild(rollingRestart, {
    workflowId: restartWorkflowId(rb),
    args: [rb.childInput('rolling-restart', restart.inputs, { target: restart.service, params: restart }) as RunbookInput],
    staticSummary: `restart ${restart.service} on ${rb.env} to ${why} (for ${workflowInfo().workflowId})`,
  });
  return { newTaskArns: result.newTaskArns, stoppedTaskArns: result.stoppedTaskArns };
}

function restartWorkflowId(rb: Update): string {
  return runWorkflowId('rolling-restart', rb.env, rb.params.restart.service);
}

/** Reads everything the run depends on and refuses, changing nothing, what it must not do. */
async function preflight(rb: Update, scoped: boolean): Promise<Preflight> {
  const p = rb.params;
  const ids = p.regions.map((r) => r.id);
  const stagingRequired = Boolean(p.stagingEnv) && p.requireStagingRun;
  const [rows, otherRuns, restartHeldBy, stagingRun] = await Promise.all([
    regionConfig.readRegions({ db: { aws: p.aws, login: p.database }, ids }),
    runs.findOpenRuns({ runbook: rb.runbook, env: rb.env, except: workflowInfo().workflowId }),
    runs.isRunOpen({ workflowId: restartWorkflowId(rb) }),
    stagingRequired ? runs.findSucceededRun({ runbook: rb.runbook, env: p.stagingEnv!, regionIds: ids }) : Promise.resolve(null),
  ]);
  refuseIf(otherRuns.length > 0, 'regions', `another region data update is running on ${rb.env} (${otherRuns.join(', ')}); one at a time`);
  refuseIf(
    restartHeldBy,
    'restart.service',
    `${p.restart.service} is being restarted by ${restartWorkflowId(rb)}; start once it has finished`,
  );
  refuseIf(
    stagingRequired && !stagingRun,
    'requireStagingRun',
    `${rb.env} takes region data only after it succeeded on ${p.stagingEnv}: no succeeded, non-dry region-data-update run on ${p.stagingEnv} covers ${ids.join(', ')}` +
      ` (run it there first, or set requireStagingRun=false with a stagingOverrideReason)`,
  );
  p.regions.forEach((region, i) => {
    const row = rows.find((r) => r.id === region.id);
    refuseIf(region.isNew && Boolean(row), `regions.${i}.new`, `${region.id} is marked new but region_config already has it`);
    refuseIf(!region.isNew && !row, `regions.${i}.id`, `${region.id} is not in region_config (mark it "new": true to add it)`);
    refuseIf(Boolean(row) && row!.s3Uri === region.newDataUri, `regions.${i}.newDataUri`, `${region.id} already uses ${region.newDataUri}`);
    if (scoped && row) refuseOverlaps(i, region, row, rows, p.mode);
  });
  await Promise.all(
    p.regions.map((r, i) => regionData.inspectRegionData({ aws: p.aws, uri: r.newDataUri, field: `regions.${i}.newDataUri` })),
  );
  return {
    existing: p.regions.filter((r) => !r.isNew).map((r) => ({ ...r, row: rows.find((row) => row.id === r.id)! })),
    added: p.regions.filter((r) => r.isNew),
    staging: stagingRun ?? (p.stagingEnv && !p.requireStagingRun ? { waived: p.stagingOverrideReason ?? '' } : null),
  };
}

/** A folder URI with one trailing slash, so `a/` contains `a/b` but not `ab`. */
const folder = (uri: string) => `${uri.replace(/\/+$/, '')}/`;
const within = (inner: string, outer: string) => folder(inner).startsWith(folder(outer));

/**
 * An update touches only its region's folder: refuse data that is a whole
 * bucket (its backup could not sit beside it), new data inside the region or
 * the region inside the new data (the copy would overwrite what it reads),
 * and regions nested in each other.
 */
function refuseOverlaps(i: number, region: RegionUpdate, row: RegionRow, rows: RegionRow[], mode: RegionDataUpdateParams['mode']): void {
  if (mode !== 's3-overwrite') return;
  refuseIf(
    /^s3:\/\/[^/]+\/*$/.test(row.s3Uri),
    `regions.${i}.id`,
    `${region.id}'s data is the whole bucket ${row.s3Uri}: only data in a folder can be backed up beside it and overwritten`,
  );
  refuseIf(
    within(region.newDataUri, row.s3Uri) || within(row.s3Uri, region.newDataUri),
    `regions.${i}.newDataUri`,
    `${region.newDataUri} and ${region.id}'s data ${row.s3Uri} lie inside one another: copying one over the other would overwrite what it reads`,
  );
  const nested = rows.find((other) => other.id !== row.id && (within(other.s3Uri, row.s3Uri) || within(row.s3Uri, other.s3Uri)));
  refuseIf(
    Boolean(nested),
    `regions.${i}.id`,
    `${region.id}'s data ${row.s3Uri} and ${nested?.id}'s data ${nested?.s3Uri} lie inside one another: update them one at a time`,
  );
}

function preflightDetail(found: Preflight): string {
  const regions = [
    ...found.existing.map((r) => `${r.id} v${r.row.version} at ${r.row.s3Uri}`),
    ...found.added.map((r) => `${r.id} (new)`),
  ].join('; ');
  const staging = !found.staging
    ? ''
    : 'waived' in found.staging
      ? `; staging rule waived: ${found.staging.waived}`
      : `; staging run ${found.staging.workflowId} succeeded at ${found.staging.closedAt}`;
  return `${regions}${staging}`;
}
