/** db-migration's online-mode steps: the copy by logical replication and the short window at cutover. */
import type { DatabaseLocation } from '../../activities/pg-connect.js';
import type { DatabaseInspection } from '../../activities/postgres.js';
import type { InstanceInfo } from '../../activities/rds.js';
import type { WriterState } from '../../activities/writers.js';
import type { SyncProgress } from '../../activities/logical-replication.js';
import { protectionGaps } from '../../db-protection.js';
import {
  adminLogin,
  appLogin,
  deadline,
  long,
  newAppLogin,
  quick,
  replicationLogin,
  seconds,
  writerNames,
  type Migration,
} from './context.js';

export async function copySchema(
  m: Migration,
  source: DatabaseLocation,
  target: DatabaseLocation,
  inspected: DatabaseInspection | undefined,
): Promise<{ tables: number; fingerprint: string }> {
  const { rb, p } = m;
  return rb.change(
    'copy-schema',
    `pg_dump --schema-only ${p.sourceInstance}/${p.database}, restore it into a freshly created ${target.instance}/${p.database} as ${m.newApp.username}`,
    () =>
      long(p.copyTimeoutMs).copySchema({
        source: appLogin(m, source),
        admin: adminLogin(m, target),
        app: newAppLogin(m, target),
        sources: m.sources,
        encoding: inspected?.encoding ?? 'UTF8',
      }),
    { detail: (r) => `${r.tables} tables, their keys, indexes and sequences, no rows`, dryResult: { tables: 0, fingerprint: '' } },
  );
}

/** The publication and slot on the source; undone (with the subscription) by any failure before the writers move. */
export async function publish(m: Migration, source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
  const { rb, p } = m;
  const { name } = m.replication;
  await rb.change(
    'publish',
    `create the publication ${name} of every table and the replication slot ${name} on ${p.sourceInstance}`,
    () => quick.publish({ replication: replicationLogin(m, source), sources: m.sources, names: m.replication }),
    {
      // Registered before it runs: a slot made by an attempt whose result was lost is dropped too.
      undo: {
        summary: `drop the subscription, publication and replication slot ${name}`,
        run: () => dropReplicationObjects(m, source, target),
      },
      detail: (r) =>
        `publication ${name} ${r.createdPublication ? 'created' : 'found'}; slot ${name} ${r.createdSlot ? 'created' : 'found'}`,
      dryResult: { createdPublication: true, createdSlot: true },
    },
  );
}

export async function subscribe(m: Migration, source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
  const { rb, p } = m;
  const { name } = m.replication;
  await rb.change(
    'subscribe',
    `create the subscription ${name} on ${target.instance}: the initial copy starts, the writers keep writing`,
    () =>
      quick.subscribe({
        source: replicationLogin(m, source),
        target: adminLogin(m, target),
        sources: m.sources,
        names: m.replication,
      }),
    {
      detail: (r) =>
        `subscription ${name} ${r.created ? 'created' : 'found (made by an earlier attempt)'} on ${target.instance}, replicating from ${p.sourceInstance} as ${replicationLogin(m, source).credentials.username}`,
      dryResult: { created: true },
    },
  );
}

export async function initialSync(
  m: Migration,
  source: DatabaseLocation,
  target: DatabaseLocation,
  fingerprint: string,
): Promise<SyncProgress | undefined> {
  const { rb, p } = m;
  return rb.readUnlessDryRun<SyncProgress | undefined>(
    'initial-sync',
    `wait until every table is copied and streaming (per-table state and lag in the heartbeat); fail on a schema change on ${p.sourceInstance}`,
    () =>
      long(p.copyTimeoutMs).waitForSync({
        ...replicationPair(m, source, target),
        fingerprint,
        deadline: deadline(p.copyTimeoutMs),
      }),
    {
      detail: (s) => (s ? describeSync(s) : ''),
      wouldDo: `would wait until every table of ${p.sourceInstance} is copied and streaming`,
      dryResult: undefined,
    },
  );
}

export async function onlineCutoverPrompt(
  m: Migration,
  source: DatabaseLocation,
  target: DatabaseLocation,
  created: InstanceInfo,
  sourceInfo: InstanceInfo,
  synced: SyncProgress | undefined,
  writers: WriterState[],
  inspected: DatabaseInspection | undefined,
): Promise<string> {
  const lag = m.rb.dryRun ? synced : await quick.replicationLag(replicationPair(m, source, target));
  const now = lag
    ? `${lag.ready}/${lag.tables} tables streaming, ${lag.lagBytes} bytes and ${lag.lagSeconds.toFixed(1)} s behind`
    : 'every table streaming';
  const gaps = m.rb.dryRun ? [] : protectionGaps(sourceInfo, created);
  const lacking = gaps.length ? ` It is LESS PROTECTED than ${m.p.sourceInstance}, lacking: ${gaps.join('; ')}.` : '';
  return (
    `${created.identifier} follows ${m.p.sourceInstance} (${now}).${lacking} Cut over? The window: stop ${writerNames(writers)}, ` +
    `wait until ${created.identifier} has every write, set the sequences, compare every table's row count` +
    `${inspected ? ` (${inspected.tables.length} tables, ~${inspected.tables.reduce((sum, t) => sum + t.estimatedRows, 0)} rows)` : ''}, start the writers on ${created.endpoint!.host}. ` +
    `Planned: the writers' stop and start, plus seconds for the catch-up and the counts (which read every table once).`
  );
}

export async function catchUp(m: Migration, source: DatabaseLocation, target: DatabaseLocation, fingerprint: string): Promise<void> {
  const { rb, p } = m;
  await rb.change(
    'catch-up',
    `wait until ${target.instance} has confirmed ${p.sourceInstance}'s current WAL position`,
    () =>
      long(p.writersTimeoutMs).catchUp({
        ...replicationPair(m, source, target),
        fingerprint,
        deadline: deadline(p.writersTimeoutMs),
      }),
    {
      detail: (r) => `confirmed ${r.lsn} after ${seconds(r.waitedMs)}`,
      dryResult: { lsn: '', waitedMs: 0 },
    },
  );
}

export async function copySequences(m: Migration, source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
  const { rb, p } = m;
  await rb.change(
    'copy-sequences',
    `set every sequence of ${target.instance} past ${p.sourceInstance}'s last value (setval; replication does not carry sequences)`,
    () => quick.copySequences({ source: appLogin(m, source), target: adminLogin(m, target), sources: m.sources }),
    {
      detail: (r) => `${r.sequences} sequences set ahead of the source`,
      dryResult: { sequences: 0 },
    },
  );
}

export async function compareCounts(
  m: Migration,
  source: DatabaseLocation,
  target: DatabaseLocation,
): Promise<{ tables: number; rows: number; perTable?: Record<string, number> }> {
  const { rb, p } = m;
  return rb.change(
    'compare-counts',
    `compare every table's row count on ${target.instance} with ${p.sourceInstance}`,
    () => long(p.copyTimeoutMs).compareCounts({ source: appLogin(m, source), target: newAppLogin(m, target), sources: m.sources }),
    {
      detail: (r) => `${r.tables} tables and ${r.rows} rows equal`,
      dryResult: { tables: 0, rows: 0, perTable: {} },
    },
  );
}

/** After the cutover nothing more may come from the old instance, and a slot left there would keep its WAL forever. */
export async function dropReplication(m: Migration, source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
  const { rb, p } = m;
  await rb.change(
    'drop-replication',
    `drop the subscription on ${target.instance}, the publication and every replication slot of the run on ${p.sourceInstance}`,
    () => dropReplicationObjects(m, source, target),
    { detail: (r) => (r.dropped.length ? `dropped ${r.dropped.join(', ')}` : 'nothing left to drop'), dryResult: { dropped: [] } },
  );
}

function dropReplicationObjects(m: Migration, source: DatabaseLocation, target: DatabaseLocation) {
  return long(m.p.writersTimeoutMs).dropReplication(replicationPair(m, source, target));
}

/** Source and target as the replication activities take them: the replication login on the source, admin on the target. */
function replicationPair(m: Migration, source: DatabaseLocation, target: DatabaseLocation) {
  return { source: replicationLogin(m, source), target: adminLogin(m, target), sources: m.sources, names: m.replication };
}

/** One line for a step detail: tables streaming, the ones still copying, the lag. */
function describeSync(p: SyncProgress): string {
  return `${p.ready}/${p.tables} tables streaming${p.pending.length ? ` (${p.pending.join(', ')})` : ''}; lag ${p.lagBytes} bytes, ${p.lagSeconds.toFixed(1)} s`;
}
