/**
 * Seed 002, "Migrations Involving the Database": move the application's
 * PostgreSQL database to a new RDS instance.
 *
 *   make the old (private) database reachable for the copy: public access and a security-group rule
 *   stop every process that writes: the ECS writer services, scaled to 0
 *   pg_dump the old database (here: directory format, N jobs, kept in S3)
 *   take the old instance out of Terraform state, so Terraform cannot delete it
 *   create the new instance (Terraform targeted plan and apply, or the RDS API)
 *   log in as admin and create the app role
 *   restore the dump as the app user (pg_restore -j N)
 *   verify every table, sequence and schema migration; close the temporary access
 *   checkpoint `cutover`: point the writers at the new database and start them
 *   checkpoint `delete-old`: "once we are satisfied", delete the old instance (final snapshot)
 *
 * Online mode (logical replication, the default where the source supports it)
 * keeps the writers running through the copy instead: schema copy, publication
 * and subscription, initial sync; then at `cutover` the window is only: stop
 * the writers, catch up to the source's WAL position, set the sequences, compare
 * row counts, repoint and start the writers; then the replication objects go.
 *
 * Until the writers start on the new database, any failure or rejection starts
 * them again on the old one, untouched; the new instance is left for
 * inspection and named in the error. Passwords never enter this workflow:
 * it passes secret references, and activities resolve them.
 */
import type { AwsConnection } from '../config.js';
import type { RunbookInput } from '../messages.js';
import type { Credentials, DatabaseLocation, EndpointMap } from '../activities/pg-connect.js';
import type { DatabaseInspection } from '../activities/postgres.js';
import type { InstanceInfo } from '../activities/rds.js';
import type { WriterRef, WriterTarget } from '../activities/writers.js';
import { definePlan, runRunbook, type RunbookOf } from './engine/index.js';
import { pauseDeploys, resumeDeploys } from './db-migration/deploy-pipeline.js';
import { locate, newMigration, type Migration, type Preflight } from './db-migration/context.js';
import {
  backup,
  chooseModeOnceReachable,
  closeAccess,
  createAppRole,
  createNewInstance,
  cutoverPrompt,
  deleteOldInstance,
  detachOldState,
  inspectSource,
  openAccess,
  preflight,
  repointWriters,
  restore,
  restoreWriters,
  stopWriters,
  verifiedCounts,
  verify,
} from './db-migration/steps.js';
import {
  catchUp,
  compareCounts,
  copySchema,
  copySequences,
  dropReplication,
  initialSync,
  onlineCutoverPrompt,
  publish,
  subscribe,
} from './db-migration/online-steps.js';

export interface TerraformProvisioning {
  mode: 'terraform';
  /** Path on the worker, from the environment's terraform.dirs. */
  dir: string;
  /** Its name there, as the operator gave it (runs started before the allowlist gave a path). */
  dirName?: string;
  workspace: string;
  /** The instance's resource address, e.g. `aws_db_instance.database`. */
  instanceAddress: string;
  /** The generated password's address, e.g. `random_string.db_password`. */
  passwordAddress: string;
  /** The environment's Terraform CLI configuration (TF_CLI_CONFIG_FILE), e.g. naming a provider mirror. */
  cliConfig?: string;
}

/** Where to look whether Terraform manages the source, when the new instance is made with the RDS API. */
export interface TerraformStateRef {
  /** Path on the worker, from the environment's terraform.dirs. */
  dir: string;
  /** Its name there, as the operator gave it (runs started before the allowlist gave a path). */
  dirName?: string;
  workspace: string;
}

export type Provisioning = { mode: 'aws'; terraformState?: TerraformStateRef } | TerraformProvisioning;

export type MigrationMode = 'online' | 'dump';

export interface DbMigrationParams {
  aws: AwsConnection;
  /** Unset: online where the source can replicate, else dump. */
  mode?: MigrationMode;
  /** The instance to move away from (the run's target). */
  sourceInstance: string;
  /** The database inside the instance. */
  database: string;
  newInstance: { identifier: string; instanceClass?: string; engineVersion?: string; allocatedStorageGb?: number };
  provisioning: Provisioning;
  writers: WriterRef[];
  backup: { bucket: string; prefix: string };
  credentials: {
    /** The application's login: dumps the old database, owns the restored one. */
    app: Credentials;
    /** The new instance's master user. */
    admin: Credentials;
    /** The application's login on the new instance, when it differs (Terraform generates a new password). */
    newApp?: Credentials;
    /** The login the new instance replicates from the old one with (online mode); default: admin. */
    replication?: Credentials;
  };
  /** The deploy pipeline's stage that touches the database: its inbound transition is disabled for the run. */
  deployPipeline?: { name: string; stage: string };
  temporaryAccess?: { cidr: string };
  tls: 'require' | 'disable';
  parallelJobs: number;
  instanceTimeoutMs: number;
  writersTimeoutMs: number;
  copyTimeoutMs: number;
  endpointMap?: EndpointMap;
}

export interface DbMigrationResult {
  mode: MigrationMode;
  source: { instance: string; endpoint: string };
  newInstance: { instance: string; endpoint: string };
  /** Dump mode's backup; none in online mode. */
  backup: { location: string; files: number; bytes: number } | null;
  /** From the writers' stop to their start on the new database: the application's write downtime. */
  writersStopped: { from: string; to: string; ms: number };
  verified: { tables: number; rows: number; sequences: number; schemaMigrationRows: number | null };
  writers: { service: string; taskDefinition: string; desiredCount: number }[];
  oldInstance: { deleted: true; finalSnapshot: string } | { deleted: false; reason: string };
}

export const dbMigrationPlan = definePlan({
  steps: [
    'preflight',
    'pause-deploys',
    'open-access',
    'inspect-source',
    'stop-writers',
    'backup',
    'detach-old-state',
    'create-new-instance',
    'create-app-role',
    'restore',
    'copy-schema',
    'publish',
    'subscribe',
    'initial-sync',
    'verify',
    'close-access',
    'cutover',
    'window-stop-writers',
    'catch-up',
    'copy-sequences',
    'compare-counts',
    'repoint-writers',
    'restore-writers',
    'drop-replication',
    'delete-old',
    'delete-old-instance',
    'resume-deploys',
  ],
  checkpoints: ['cutover', 'delete-old'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
export type DbRun = RunbookOf<DbMigrationParams, typeof dbMigrationPlan>;

/** Steps only online mode runs, and the dump-only ones it skips. */
const ONLINE_STEPS = [
  'copy-schema',
  'publish',
  'subscribe',
  'initial-sync',
  'window-stop-writers',
  'catch-up',
  'copy-sequences',
  'compare-counts',
  'drop-replication',
] as const;
const DUMP_STEPS = ['stop-writers', 'backup', 'restore', 'verify'] as const;

export async function dbMigration(input: RunbookInput): Promise<DbMigrationResult> {
  return runRunbook(input, dbMigrationPlan, async (rb: DbRun) => {
    const m = newMigration(rb);
    const found = await preflight(m);
    await pauseDeploys(m);
    const source = locate(m, found.source);
    await openAccess(m, found.source);
    const inspected = await inspectSource(m, source, found.pgDumpVersion);
    const mode = found.mode ?? (await chooseModeOnceReachable(m, found.source, source));
    return mode.mode === 'online' ? migrateOnline(m, found, source, inspected) : migrateByDump(m, found, source, inspected);
  });
}

/** The seed's steps, in its order: the writers stay stopped from the dump until they start on the new database. */
async function migrateByDump(
  m: Migration,
  found: Preflight,
  source: DatabaseLocation,
  inspected: DatabaseInspection | undefined,
): Promise<DbMigrationResult> {
  for (const step of ONLINE_STEPS) m.rb.skip(step, 'dump mode');
  const stoppedAt = new Date().toISOString();
  await stopWriters(m, found.writers);
  const dump = await backup(m, source, inspected);
  await detachOldState(m);
  const created = await createNewInstance(m, found.source);
  const target = locate(m, created);
  await createAppRole(m, target);
  await restore(m, target, dump, inspected);
  const verified = await verify(m, source, target);
  await closeAccess(m);
  await m.rb.checkpoint('cutover', cutoverPrompt(m, created, verified, found.writers, found.source));
  const repointed = await repointWriters(m, found.writers, created);
  const writersStopped = await restoreWriters(m, repointed, created, stoppedAt);
  m.rb.commit(`the writers run on ${created.identifier}; moving them back would lose their writes`);
  const oldInstance = await deleteOldInstance(m, source, created, found.source, verifiedCounts(verified));
  await resumeDeploys(m);
  return {
    ...summary(m, found, created, repointed, writersStopped, oldInstance),
    mode: 'dump',
    backup: { location: `s3://${dump.bucket}/${dump.prefix}`, files: dump.files, bytes: dump.bytes },
    verified: {
      tables: verified.tables.length,
      rows: verified.rows,
      sequences: verified.sequences.length,
      schemaMigrationRows: verified.schemaMigration?.rows ?? null,
    },
  };
}

/** Online mode's steps, in order: the copy runs while the writers write; they stop only for the window after `cutover`. */
async function migrateOnline(
  m: Migration,
  found: Preflight,
  source: DatabaseLocation,
  inspected: DatabaseInspection | undefined,
): Promise<DbMigrationResult> {
  for (const step of DUMP_STEPS) m.rb.skip(step, 'online mode: the writers keep running while logical replication copies the rows');
  await detachOldState(m);
  const created = await createNewInstance(m, found.source);
  const target = locate(m, created);
  await createAppRole(m, target);
  const schema = await copySchema(m, source, target, inspected);
  await publish(m, source, target);
  await subscribe(m, source, target);
  const synced = await initialSync(m, source, target, schema.fingerprint);
  await m.rb.checkpoint('cutover', await onlineCutoverPrompt(m, source, target, created, found.source, synced, found.writers, inspected));
  // The window: from here the writers are stopped until they run on the new database.
  const stoppedAt = new Date().toISOString();
  await stopWriters(m, found.writers, 'window-stop-writers');
  await catchUp(m, source, target, schema.fingerprint);
  await copySequences(m, source, target);
  const counted = await compareCounts(m, source, target);
  const repointed = await repointWriters(m, found.writers, created);
  const writersStopped = await restoreWriters(m, repointed, created, stoppedAt);
  m.rb.commit(`the writers run on ${created.identifier}; moving them back would lose their writes`);
  await dropReplication(m, source, target);
  await closeAccess(m);
  const oldInstance = await deleteOldInstance(m, source, created, found.source, { tables: counted.perTable ?? {} });
  await resumeDeploys(m);
  return {
    ...summary(m, found, created, repointed, writersStopped, oldInstance),
    mode: 'online',
    backup: null,
    verified: {
      tables: counted.tables,
      rows: counted.rows,
      sequences: inspected?.sequences ?? 0,
      schemaMigrationRows: inspected?.schemaMigration?.rows ?? null,
    },
  };
}

/** The parts of the result both modes report alike. */
function summary(
  m: Migration,
  found: Preflight,
  created: InstanceInfo,
  repointed: WriterTarget[],
  writersStopped: DbMigrationResult['writersStopped'],
  oldInstance: DbMigrationResult['oldInstance'],
): Omit<DbMigrationResult, 'mode' | 'backup' | 'verified'> {
  return {
    writersStopped,
    source: { instance: m.p.sourceInstance, endpoint: found.source.endpoint?.host ?? '' },
    newInstance: { instance: created.identifier, endpoint: created.endpoint?.host ?? '' },
    writers: repointed.map((w) => ({ service: w.service, taskDefinition: w.taskDefinition ?? '', desiredCount: w.desiredCount })),
    oldInstance,
  };
}
