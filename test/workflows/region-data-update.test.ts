/**
 * region-data-update's workflow with stub S3, region_config and restart
 * activities: the order of its steps (the seed's), the order of its undo on a
 * QA rejection, a dry run that changes nothing, and the db-uri mode. The
 * rolling restart runs as a real child run on the same stubs.
 */
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import type { RegionRow, VersionBump } from '../../src/activities/region-config.js';
import type { CopyRegionData } from '../../src/activities/region-data.js';
import type { HealthyNewTasks } from '../../src/activities/task-health.js';
import { approveSignal, rejectSignal, FailureType } from '../../src/messages.js';
import type { RegionDataUpdateParams, RegionDataUpdateResult } from '../../src/workflows/region-data-update.js';
import type { RollingRestartParams } from '../../src/workflows/rolling-restart.js';
import { outcome, runbookInput, statusWhen, useStubWorker } from '../helpers/stub-worker.js';

let services = 0;

/** Two existing regions (MI v3, PA v7) and a new one (WI); a fresh service per run, so each child restart has an ID of its own. */
function paramsFor(overrides: Partial<RegionDataUpdateParams> = {}): RegionDataUpdateParams {
  const service = `maps-${process.pid}-${++services}`;
  const restart: RollingRestartParams = {
    aws: { region: 'us-east-1' },
    cluster: 'main',
    service,
    autoScalingGroup: 'maps-asg',
    targetGroup: 'maps-tg',
    healthTimeoutMs: 60_000,
    restoreAsg: true,
  };
  return {
    aws: { region: 'us-east-1' },
    regions: [
      { id: 'MI', newDataUri: 's3://new/MI', isNew: false },
      { id: 'PA', newDataUri: 's3://new/PA', isNew: false },
      { id: 'WI', newDataUri: 's3://new/WI', isNew: true },
    ],
    mode: 's3-overwrite',
    exact: false,
    requireStagingRun: false,
    database: { field: 'database' } as unknown as RegionDataUpdateParams['database'],
    restart: { service, inputs: restart as unknown as Record<string, unknown> },
    ...overrides,
  };
}

/** What the run asked S3, region_config and ECS to do, in order. */
function stubs() {
  const calls: string[] = [];
  const rows: RegionRow[] = [
    { id: 'MI', s3Uri: 's3://maps/MI', version: 3 },
    { id: 'PA', s3Uri: 's3://maps/PA', version: 7 },
  ];
  const activities = {
    async readRegions({ ids }: { ids: string[] }): Promise<RegionRow[]> {
      return rows.filter((r) => ids.includes(r.id));
    },
    async findOpenRuns(): Promise<string[]> {
      return [];
    },
    async isRunOpen(): Promise<boolean> {
      return false;
    },
    async findSucceededRun() {
      return null;
    },
    async inspectRegionData({ uri }: { uri: string }) {
      return { uri, objects: 2, bytes: 10, topojson: ['map.topojson'] };
    },
    async freeBackupUri({ uri, date }: { uri: string; date: string }): Promise<string> {
      return `${uri}-backup-${date}`;
    },
    async copyRegionData({ from, to, exact }: CopyRegionData) {
      calls.push(`copy ${from} -> ${to}${exact ? ' exact' : ''}`);
      return { from, to, copied: 2, bytes: 10, removed: 0 };
    },
    async setRegionUris({ changes }: { changes: { id: string; from: string; to: string }[] }) {
      calls.push(`point ${changes.map((c) => `${c.id} at ${c.to}`).join(', ')}`);
    },
    async addRegions({ regions }: { regions: { id: string }[] }) {
      calls.push(`add ${regions.map((r) => r.id).join(' ')}`);
    },
    async removeRegions({ ids }: { ids: string[] }) {
      calls.push(`remove ${ids.join(' ')}`);
    },
    async bumpVersions({ bumps }: { bumps: VersionBump[] }): Promise<RegionRow[]> {
      calls.push(`bump ${bumps.map((b) => b.id).join(' ')}`);
      return bumps.map((b) => ({ id: b.id, s3Uri: '', version: b.from + 1 }));
    },
    async restoreVersions({ bumps }: { bumps: VersionBump[] }): Promise<RegionRow[]> {
      calls.push(`restore versions ${bumps.map((b) => `${b.id} v${b.from}`).join(' ')}`);
      return bumps.map((b) => ({ id: b.id, s3Uri: '', version: b.from }));
    },
    // The child rolling restart: one task replaced.
    async inspectAutoScalingGroup() {
      return { min: 1, max: 2, desired: 2, instances: 2 };
    },
    async inspectService() {
      return {
        desiredCount: 1,
        deploymentInProgress: false,
        targetGroupArns: ['arn:tg/maps-tg'],
        tasks: [{ arn: 'old-1', lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }],
      };
    },
    async inspectTargetGroup() {
      return { arn: 'arn:tg/maps-tg', name: 'maps-tg', targetType: 'ip', targets: [], healthy: 1 };
    },
    async inspectPlacementCapacity() {
      return null;
    },
    async findServiceHolders(): Promise<string[]> {
      return [];
    },
    async setServiceDesiredCount({ desiredCount }: { desiredCount: number }) {
      return { desiredCount };
    },
    async waitForHealthyNewTasks(): Promise<HealthyNewTasks> {
      calls.push('restart');
      return { newTaskArns: ['new-1'], failures: [], polls: 1 };
    },
    async stopTasks({ taskArns }: { taskArns: string[] }) {
      return { stopped: taskArns, alreadyStopped: [] };
    },
  };
  return { calls, activities };
}

/** Each region's copies run in parallel: calls grouped by step (sizes given), each group sorted, dates as DATE. */
function byStep(calls: string[], sizes: number[]): string[][] {
  let at = 0;
  return sizes.map((n) =>
    calls
      .slice(at, (at += n))
      .map((c) => c.replace(/\d{4}-\d{2}-\d{2}/, 'DATE'))
      .sort(),
  );
}

async function approve(handle: WorkflowHandle, checkpoint: string): Promise<void> {
  await statusWhen(handle, (s) => s.waitingFor?.checkpoint === checkpoint);
  await handle.signal(approveSignal, { checkpoint, by: 'bob' });
}

describe('region-data-update workflow, with stub S3, region_config and restart', () => {
  const worker = useStubWorker([
    'readRegions',
    'findOpenRuns',
    'isRunOpen',
    'findSucceededRun',
    'inspectRegionData',
    'freeBackupUri',
    'copyRegionData',
    'setRegionUris',
    'addRegions',
    'removeRegions',
    'bumpVersions',
    'restoreVersions',
    'inspectAutoScalingGroup',
    'inspectService',
    'inspectTargetGroup',
    'inspectPlacementCapacity',
    'findServiceHolders',
    'setServiceDesiredCount',
    'waitForHealthyNewTasks',
    'stopTasks',
  ]);

  it('backs up, copies, adds, restarts and bumps the versions before QA, in the order of the seed', async () => {
    const s = stubs();
    const { start } = worker.serve(s.activities);
    const handle = await start('regionDataUpdate', runbookInput('region-data-update', paramsFor()));
    await approve(handle, 'test-maps');
    const atQa = await statusWhen(handle, (st) => st.waitingFor?.checkpoint === 'qa');
    // The seed bumps the versions as part of the restart: QA already sees them.
    assert.deepEqual(byStep(s.calls, [2, 2, 1, 1, 1]), [
      ['copy s3://maps/MI -> s3://maps/MI-backup-DATE', 'copy s3://maps/PA -> s3://maps/PA-backup-DATE'],
      ['copy s3://new/MI -> s3://maps/MI', 'copy s3://new/PA -> s3://maps/PA'],
      ['add WI'],
      ['restart'],
      ['bump MI PA'],
    ]);
    assert.deepEqual(
      atQa.steps.map((st) => `${st.name} ${st.status}`),
      [
        'resolve done',
        'preflight done',
        'test-maps done',
        'back-up-data done',
        'replace-data done',
        'add-new-regions done',
        'restart-services done',
        'bump-versions done',
        'qa running',
      ],
    );
    await handle.signal(approveSignal, { checkpoint: 'qa', by: 'bob' });
    const result = (await handle.result()) as RegionDataUpdateResult;
    assert.deepEqual(
      result.regions.map((r) => `${r.id} ${r.uri} v${r.oldVersion ?? '-'} -> v${r.newVersion}${r.isNew ? ' new' : ''}`),
      ['MI s3://maps/MI v3 -> v4', 'PA s3://maps/PA v7 -> v8', 'WI s3://new/WI v- -> v1 new'],
    );
    assert.match(result.regions[0]!.backupUri ?? '', /^s3:\/\/maps\/MI-backup-\d{4}-\d{2}-\d{2}$/);
    assert.deepEqual(result.restart, { newTaskArns: ['new-1'], stoppedTaskArns: ['old-1'] });
  });

  it('undoes a QA rejection newest first: versions back, new region removed, data restored exactly, services restarted', async () => {
    const s = stubs();
    const { start } = worker.serve(s.activities);
    const handle = await start('regionDataUpdate', runbookInput('region-data-update', paramsFor()));
    await approve(handle, 'test-maps');
    await statusWhen(handle, (st) => st.waitingFor?.checkpoint === 'qa');
    const before = s.calls.length;
    await handle.signal(rejectSignal, { checkpoint: 'qa', by: 'bob', reason: 'MI map does not load' });
    const ended = await outcome(handle);
    assert.equal(ended.errorType, FailureType.rolledBack);
    assert.match(ended.message ?? '', /checkpoint 'qa' rejected by bob: MI map does not load; 3 change\(s\) undone/);
    assert.deepEqual(byStep(s.calls.slice(before), [1, 1, 2, 1]), [
      ['restore versions MI v3 PA v7'],
      ['remove WI'],
      ['copy s3://maps/MI-backup-DATE -> s3://maps/MI exact', 'copy s3://maps/PA-backup-DATE -> s3://maps/PA exact'],
      ['restart'],
    ]);
  });

  it('changes nothing in a dry run and says what it would do', async () => {
    const s = stubs();
    const { start } = worker.serve(s.activities);
    const handle = await start('regionDataUpdate', runbookInput('region-data-update', paramsFor(), { dryRun: true }));
    const result = (await handle.result()) as RegionDataUpdateResult;
    assert.deepEqual(s.calls, []);
    const status = await statusWhen(handle, (st) => st.phase === 'succeeded');
    const skipped = status.steps.filter((st) => st.status === 'skipped').map((st) => st.name);
    assert.deepEqual(skipped, ['test-maps', 'back-up-data', 'replace-data', 'add-new-regions', 'restart-services', 'bump-versions', 'qa']);
    assert.match(status.steps.find((st) => st.name === 'replace-data')!.detail ?? '', /^would copy the new data over the data of MI, PA$/);
    assert.deepEqual(
      result.regions.map((r) => `${r.id} v${r.newVersion}`),
      ['MI v3', 'PA v7', 'WI v1'],
    );
  });

  it('in db-uri mode points region_config at the new data, backs nothing up, and points it back on a rejection', async () => {
    const s = stubs();
    const { start } = worker.serve(s.activities);
    const handle = await start('regionDataUpdate', runbookInput('region-data-update', paramsFor({ mode: 'db-uri' })));
    await approve(handle, 'test-maps');
    const atQa = await statusWhen(handle, (st) => st.waitingFor?.checkpoint === 'qa');
    assert.match(atQa.steps.find((st) => st.name === 'back-up-data')!.detail ?? '', /db-uri mode leaves the old data where it is/);
    await handle.signal(rejectSignal, { checkpoint: 'qa', by: 'bob', reason: 'no' });
    assert.equal((await outcome(handle)).errorType, FailureType.rolledBack);
    assert.deepEqual(s.calls, [
      'point MI at s3://new/MI, PA at s3://new/PA',
      'add WI',
      'restart',
      'bump MI PA',
      'restore versions MI v3 PA v7',
      'remove WI',
      'point MI at s3://maps/MI, PA at s3://maps/PA',
      'restart',
    ]);
  });
});
