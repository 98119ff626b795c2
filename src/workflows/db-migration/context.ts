/**
 * One db-migration run's context: its inputs, the names it derives from its
 * run ID, what exists so far, and the small helpers every step shares (logins,
 * locations, the activity proxies). The steps are in `steps.ts` (both modes)
 * and `online-steps.ts` (logical replication).
 */
import { patched, workflowInfo } from '@temporalio/workflow';
import type { BackupLocation, PgDumpActivities } from '../../activities/pgdump.js';
import type { Credentials, DatabaseLocation, Login } from '../../activities/pg-connect.js';
import type { PostgresActivities } from '../../activities/postgres.js';
import type { InstanceInfo, RdsActivities } from '../../activities/rds.js';
import type { createSecretActivities, CredentialUse, SecretSources } from '../../activities/secrets.js';
import type { WriterActivities, WriterState, WriterTarget } from '../../activities/writers.js';
import type { TerraformActivities } from '../../activities/terraform.js';
import type { DeployRunsActivities } from '../../activities/deploy-runs.js';
import type { LogicalReplicationActivities, ReplicationNames } from '../../activities/logical-replication.js';
import type { RecheckActivities } from '../../activities/db-recheck.js';
import type { CodePipelineActivities } from '../../activities/codepipeline.js';
import { stepActivities, API_RETRY } from '../engine/index.js';
import type { DbMigrationParams, DbRun, MigrationMode, TerraformProvisioning } from '../db-migration.js';

type Activities = RdsActivities &
  WriterActivities &
  PostgresActivities &
  PgDumpActivities &
  ReturnType<typeof createSecretActivities> &
  TerraformActivities &
  DeployRunsActivities &
  LogicalReplicationActivities &
  RecheckActivities &
  CodePipelineActivities;

/** Runs started before online mode existed replay as the dump they were (no replication check in their history). */
const ONLINE_MODE = 'db-migration-online-mode';

/** Runs started before the deploy pipeline was paused replay without its reads and changes. */
const PAUSE_DEPLOYS = 'pause-deploy-pipeline';

/** Reads and single AWS calls. */
export const quick = stepActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: API_RETRY });

/**
 * Long work (waits, copies, checks) heartbeats: a killed worker's attempt is
 * retried on another within the heartbeat timeout, and resumes where it heartbeated.
 */
export function long(timeoutMs: number) {
  return stepActivities<Activities>({
    startToCloseTimeout: timeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: { ...API_RETRY, maximumAttempts: 10 },
  });
}

/** What preflight found; every later step reads from here. */
export interface Preflight {
  source: InstanceInfo;
  writers: WriterState[];
  pgDumpVersion: string;
  /** Decided in preflight when the database is reachable before access is opened, else by inspect-source. */
  mode?: ModeChoice;
}

export interface ModeChoice {
  mode: MigrationMode;
  why: string;
}

/** One run's state: what it derives from its input, what exists so far, and whether the writers have moved. */
export interface Migration {
  readonly rb: DbRun;
  readonly p: DbMigrationParams;
  readonly sources: SecretSources;
  readonly marker: string;
  readonly backupLocation: BackupLocation;
  readonly finalSnapshotId: string;
  /** Short, unique per run, safe in names. */
  readonly runTag: string;
  /** Whether this run may replicate (see ONLINE_MODE). */
  readonly onlineKnown: boolean;
  readonly replication: ReplicationNames;
  /** Whether this run pauses the deploy pipeline (see PAUSE_DEPLOYS). */
  readonly pausesDeploys: boolean;
  /** The application's login on the new instance, and the input field it came from. */
  readonly newApp: Credentials;
  readonly newAppField: string;
  /** Set when the writers start on the new database: from then on nothing moves them back. */
  writersOnNewDb: boolean;
  /** Whether each instance was public before the run opened it, so closing puts back exactly that. */
  sourceWasPublic: boolean;
  newWasPublic: boolean;
}

export function newMigration(rb: DbRun): Migration {
  const p = rb.params;
  const { workflowId, runId } = workflowInfo();
  const runTag = runId.replace(/[^a-z0-9]/gi, '').slice(0, 12);
  return {
    rb,
    p,
    sources: {
      aws: p.aws,
      ...(p.provisioning.mode === 'terraform' ? { terraform: { dir: p.provisioning.dir, workspace: p.provisioning.workspace } } : {}),
    },
    marker: `runbook ${workflowId}`,
    backupLocation: { aws: p.aws, bucket: p.backup.bucket, prefix: `${p.backup.prefix}${p.sourceInstance}/${runId}/` },
    runTag,
    finalSnapshotId: `${p.sourceInstance}-final-${runTag}`,
    replication: { name: `runbook_migration_${runTag.toLowerCase()}` },
    onlineKnown: patched(ONLINE_MODE),
    pausesDeploys: patched(PAUSE_DEPLOYS),
    newApp: p.credentials.newApp ?? p.credentials.app,
    newAppField: p.credentials.newApp ? 'credentials.newApp' : 'credentials.app',
    writersOnNewDb: false,
    sourceWasPublic: false,
    newWasPublic: false,
  };
}

export async function setAndWait(m: Migration, targets: WriterTarget[]) {
  await quick.setWriters({ aws: m.p.aws, targets });
  return long(m.p.writersTimeoutMs).waitForWriters({ aws: m.p.aws, targets, deadline: deadline(m.p.writersTimeoutMs) });
}

/** Every credential and the instance it goes to; the new instance's Terraform outputs exist only once Terraform has made it. */
export function credentialUses(m: Migration): CredentialUse[] {
  const { credentials, sourceInstance, newInstance, provisioning } = m.p;
  const to = (instance: string) => ({ instance, host: instance, port: 5432 });
  const madeByRun = provisioning.mode === 'terraform';
  return [
    { field: 'credentials.app', credentials: credentials.app, to: to(sourceInstance) },
    { field: 'credentials.admin', credentials: credentials.admin, to: to(newInstance.identifier), madeByRun },
    ...(credentials.newApp
      ? [{ field: 'credentials.newApp', credentials: credentials.newApp, to: to(newInstance.identifier), madeByRun }]
      : []),
    ...(credentials.replication
      ? [{ field: 'credentials.replication', credentials: credentials.replication, to: to(sourceInstance) }]
      : []),
  ];
}

export function locate(m: Migration, instance: InstanceInfo): DatabaseLocation {
  const { p } = m;
  return {
    instance: instance.identifier,
    endpoint: instance.endpoint!,
    database: p.database,
    tls: p.tls,
    ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}),
  };
}

export function appLogin(m: Migration, location: DatabaseLocation): Login {
  return { location, credentials: m.p.credentials.app, field: 'credentials.app' };
}

export function adminLogin(m: Migration, location: DatabaseLocation): Login {
  return { location, credentials: m.p.credentials.admin, field: 'credentials.admin' };
}

export function newAppLogin(m: Migration, location: DatabaseLocation): Login {
  return { location, credentials: m.newApp, field: m.newAppField };
}

/** The login the new instance replicates from the old one with. */
export function replicationLogin(m: Migration, location: DatabaseLocation): Login {
  const { credentials } = m.p;
  return credentials.replication
    ? { location, credentials: credentials.replication, field: 'credentials.replication' }
    : { location, credentials: credentials.admin, field: 'credentials.admin' };
}

export function writerNames(writers: { service: string }[]): string {
  return writers.map((w) => w.service).join(', ');
}

/** Fixed when the step starts, so a retried attempt keeps the same deadline. */
export function deadline(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

export function terraformDir(tf: TerraformProvisioning): { dir: string; workspace: string; cliConfig?: string } {
  return { dir: tf.dir, workspace: tf.workspace, ...(tf.cliConfig ? { cliConfig: tf.cliConfig } : {}) };
}

export function major(version: string): number {
  return Number.parseInt(version, 10);
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
