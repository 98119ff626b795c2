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
import { ApplicationFailure, isCancellation, patched, workflowInfo } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import { FailureType, type RunbookInput } from '../messages.js';
import type { BackupLocation, BackupResult, PgDumpActivities, RestoreResult } from '../activities/pgdump.js';
import type { Credentials, DatabaseLocation, EndpointMap, Login } from '../activities/pg-connect.js';
import type { DatabaseInspection, PostgresActivities, VerifyReport } from '../activities/postgres.js';
import type { InstanceInfo, MappedDatabaseSpec, RdsActivities } from '../activities/rds.js';
import type { createSecretActivities, CredentialUse, SecretSources } from '../activities/secrets.js';
import type { WriterActivities, WriterRef, WriterState, WriterTarget } from '../activities/writers.js';
import type { TerraformActivities } from '../activities/terraform.js';
import type { DeployRunsActivities } from '../activities/deploy-runs.js';
import type { LogicalReplicationActivities, ReplicationNames, SyncProgress } from '../activities/logical-replication.js';
import type { RecheckActivities } from '../activities/db-recheck.js';
import type { CodePipelineActivities } from '../activities/codepipeline.js';
import { protectionGaps } from '../db-protection.js';
import { planProblems, type PlanSummary } from '../terraform-plan.js';
import {
  definePlan,
  describeError,
  refuseIf,
  refuseIfHeld,
  runRunbook,
  stepActivities,
  API_RETRY,
  type RunbookOf,
} from './engine/index.js';
import { failureType } from './engine/errors.js';
import { formatBytes, shortArn } from '../format.js';

export interface TerraformProvisioning {
  mode: 'terraform';
  dir: string;
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
  dir: string;
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
type DbRun = RunbookOf<DbMigrationParams, typeof dbMigrationPlan>;

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

/** Reads and single AWS calls. */
const quick = stepActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: API_RETRY });

/**
 * Long work (waits, copies, checks) heartbeats: a killed worker's attempt is
 * retried on another within the heartbeat timeout, and resumes where it heartbeated.
 */
function long(timeoutMs: number) {
  return stepActivities<Activities>({
    startToCloseTimeout: timeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: { ...API_RETRY, maximumAttempts: 10 },
  });
}

export async function dbMigration(input: RunbookInput): Promise<DbMigrationResult> {
  return runRunbook(input, dbMigrationPlan, async (rb: DbRun) => {
    const migration = new Migration(rb);
    try {
      return await migration.run();
    } catch (err) {
      throw migration.explain(err);
    }
  });
}

interface Preflight {
  source: InstanceInfo;
  writers: WriterState[];
  pgDumpVersion: string;
  /** Decided in preflight when the database is reachable before access is opened, else by inspect-source. */
  mode?: ModeChoice;
}

interface ModeChoice {
  mode: MigrationMode;
  why: string;
}

/** One run's state: what preflight found, what exists so far, and whether the writers have moved. */
class Migration {
  private readonly p: DbMigrationParams;
  private readonly sources: SecretSources;
  private readonly marker: string;
  private readonly backupLocation: BackupLocation;
  private readonly finalSnapshotId: string;
  /** Short, unique per run, safe in names. */
  private readonly runTag: string;
  /** Set once the new instance may exist: from then on a failure reports it, left for inspection. */
  private newInstanceMayExist = false;
  /** Set when the writers start on the new database: from then on nothing moves them back. */
  private writersOnNewDb = false;
  /** Set when the old instance's deletion may have begun, so a failure says it may be half-gone. */
  private oldDeleteStarted = false;
  /** Whether each instance was public before the run opened it, so closing puts back exactly that. */
  private sourceWasPublic = false;
  private newWasPublic = false;
  /** Whether this run may replicate (see ONLINE_MODE). */
  private readonly onlineKnown: boolean;
  private readonly replication: ReplicationNames;
  /** Whether this run pauses the deploy pipeline (see PAUSE_DEPLOYS). */
  private readonly pausesDeploys: boolean;

  constructor(private readonly rb: DbRun) {
    const p = (this.p = rb.params);
    const { workflowId, runId } = workflowInfo();
    this.sources = {
      aws: p.aws,
      ...(p.provisioning.mode === 'terraform' ? { terraform: { dir: p.provisioning.dir, workspace: p.provisioning.workspace } } : {}),
    };
    this.marker = `runbook ${workflowId}`;
    this.backupLocation = { aws: p.aws, bucket: p.backup.bucket, prefix: `${p.backup.prefix}${p.sourceInstance}/${runId}/` };
    this.runTag = runId.replace(/[^a-z0-9]/gi, '').slice(0, 12);
    this.finalSnapshotId = `${p.sourceInstance}-final-${this.runTag}`;
    this.replication = { name: `runbook_migration_${this.runTag.toLowerCase()}` };
    this.onlineKnown = patched(ONLINE_MODE);
    this.pausesDeploys = patched(PAUSE_DEPLOYS);
  }

  /** The seed's steps, in its order. */
  async run(): Promise<DbMigrationResult> {
    const found = await this.preflight();
    await this.pauseDeploys();
    const source = this.locate(found.source);
    await this.openAccess(found.source);
    const inspected = await this.inspectSource(source, found.pgDumpVersion);
    const mode = found.mode ?? (await this.chooseModeOnceReachable(found.source, source));
    if (mode.mode === 'online') return this.runOnline(found, source, inspected);
    for (const step of ONLINE_STEPS) this.rb.skip(step, 'dump mode');
    const stoppedAt = new Date().toISOString();
    await this.stopWriters(found.writers);
    const backup = await this.backup(source, inspected);
    await this.detachOldState();
    const created = await this.createNewInstance(found.source);
    const target = this.locate(created);
    await this.createAppRole(target);
    await this.restore(target, backup, inspected);
    const verified = await this.verify(source, target);
    await this.closeAccess();
    await this.rb.checkpoint('cutover', this.cutoverPrompt(created, verified, found.writers, found.source));
    const repointed = await this.repointWriters(found.writers, created);
    const writersStopped = await this.restoreWriters(repointed, created, stoppedAt);
    this.rb.commit(`the writers run on ${created.identifier}; moving them back would lose their writes`);
    const oldInstance = await this.deleteOldInstance(source, created, found.source, verifiedCounts(verified));
    await this.resumeDeploys();
    return {
      mode: 'dump',
      writersStopped,
      source: { instance: this.p.sourceInstance, endpoint: found.source.endpoint?.host ?? '' },
      newInstance: { instance: created.identifier, endpoint: created.endpoint?.host ?? '' },
      backup: { location: `s3://${backup.bucket}/${backup.prefix}`, files: backup.files, bytes: backup.bytes },
      verified: {
        tables: verified.tables.length,
        rows: verified.rows,
        sequences: verified.sequences.length,
        schemaMigrationRows: verified.schemaMigration?.rows ?? null,
      },
      writers: repointed.map((w) => ({ service: w.service, taskDefinition: w.taskDefinition ?? '', desiredCount: w.desiredCount })),
      oldInstance,
    };
  }

  /** Before the writers move, a failure leaves the new instance behind on purpose: the error says so, with its name. */
  explain(err: unknown): unknown {
    if (isCancellation(err)) return err;
    if (this.writersOnNewDb) return this.leftWhere(err);
    if (!this.newInstanceMayExist) return err;
    return ApplicationFailure.create({
      type: failureType(err) ?? FailureType.failed,
      message: `${describeError(err)}; the new instance ${this.p.newInstance.identifier} is left for inspection (delete it when done)`,
      nonRetryable: true,
    });
  }

  /** After the point of no return the run ends `failed` (the engine adds where the writers are), saying where the old instance is. */
  private leftWhere(err: unknown): unknown {
    const { p } = this;
    const old = this.oldDeleteStarted
      ? `${p.sourceInstance} may be partly deleted: check it and its final snapshot ${this.finalSnapshotId}`
      : `${p.sourceInstance} is kept, untouched (delete it yourself once satisfied)`;
    return ApplicationFailure.create({
      type: failureType(err) ?? FailureType.failed,
      message: `${describeError(err)}; ${old}`,
      nonRetryable: true,
    });
  }

  // --- the steps ------------------------------------------------------------------------------------

  private async preflight(): Promise<Preflight> {
    const { rb, p } = this;
    return rb.read(
      'preflight',
      `check ${p.sourceInstance}, that ${p.newInstance.identifier} does not exist, the writers, the backup bucket and every secret`,
      () => this.readEverything(),
      {
        detail: (f) =>
          `${p.sourceInstance} (${f.source.engine} ${f.source.engineVersion}, ${f.source.instanceClass}) at ${f.source.endpoint?.host}; ` +
          `writers: ${f.writers.map((w) => `${w.service} ${w.runningCount}/${w.desiredCount}`).join(', ')}` +
          `; ${f.mode ? `mode ${f.mode.mode}: ${f.mode.why}` : 'mode decided once the database is reachable (inspect-source)'}`,
      },
    );
  }

  /** Everything the run relies on, read before anything changes; a refusal names the input field. */
  private async readEverything(): Promise<Preflight> {
    const { p } = this;
    const terraform = p.provisioning.mode === 'terraform' ? p.provisioning : undefined;
    if (terraform) await quick.terraformInit(terraformDir(terraform));
    const [source, , writers, tools] = await Promise.all([
      quick.describeDbInstance({ aws: p.aws, identifier: p.sourceInstance, field: 'sourceInstance' }),
      quick.checkDbInstanceAbsent({ aws: p.aws, identifier: p.newInstance.identifier, field: 'newInstance.identifier' }),
      quick.inspectWriters({ aws: p.aws, writers: p.writers }),
      quick.checkBackupPrerequisites({ storage: this.backupLocation }),
      quick.checkSecretRefs({ sources: this.sources, uses: this.credentialUses() }),
    ]);
    // One runbook at a time per ECS service: a deploy or restart of a writer must not meet this run's stop (runs
    // started before the service lock did not look, and must replay as they ran).
    if (!this.rb.legacy) {
      const holders = await Promise.all(
        p.writers.map((w) => quick.findServiceHolders({ env: this.rb.env, service: w.service, except: workflowInfo().workflowId })),
      );
      p.writers.forEach((w, i) => refuseIfHeld(holders[i]!, `writers.${i}.service`, w.service));
    }
    await this.refuseUnmanagedTerraform();
    if (this.pausesDeploys && p.deployPipeline) await quick.checkStageTransition(this.deployTransition(p.deployPipeline));
    refuseIf(
      !source.engine.startsWith('postgres'),
      'sourceInstance',
      `${p.sourceInstance} runs ${source.engine}; this runbook moves PostgreSQL`,
    );
    refuseIf(source.status !== 'available' || !source.endpoint, 'sourceInstance', `${p.sourceInstance} is ${source.status}, not available`);
    // An emulated instance's database is on the local server: reachable before any access is opened.
    const reachable = !p.temporaryAccess || Boolean(p.endpointMap);
    const mode = reachable ? await this.chooseMode(source, this.locate(source)) : undefined;
    return { source, writers, pgDumpVersion: tools.pgDumpVersion, ...(mode ? { mode } : {}) };
  }

  /**
   * Online where the source can replicate, unless the input asks for dump; an
   * explicit `mode: online` the source cannot serve is refused, naming every
   * missing piece (tables without a key, wal_level, …). Read-only.
   */
  private async chooseMode(source: InstanceInfo, location: DatabaseLocation): Promise<ModeChoice> {
    const { p } = this;
    if (!this.onlineKnown) return { mode: 'dump', why: 'started before online mode existed' };
    if (p.mode === 'dump') return { mode: 'dump', why: 'asked for (mode: dump)' };
    const ready = await quick.checkLogicalReplication({
      app: this.appLogin(location),
      replication: this.replicationLogin(location),
      sources: this.sources,
      targetVersion: p.newInstance.engineVersion ?? source.engineVersion,
      rds: !p.endpointMap,
    });
    if (!ready.problems.length) {
      return {
        mode: 'online',
        why: `${p.mode ? 'asked for' : 'the default'}: ${p.sourceInstance} can replicate (wal_level ${ready.walLevel}, PostgreSQL ${ready.serverVersion}, ${ready.tables} tables)`,
      };
    }
    refuseIf(p.mode === 'online', 'mode', `online needs logical replication from ${p.sourceInstance}: ${ready.problems.join('; ')}`);
    return { mode: 'dump', why: `online is not possible: ${ready.problems.join('; ')}` };
  }

  /** When preflight could not reach the database (private until open-access), the mode is decided here; a dry run cannot look. */
  private async chooseModeOnceReachable(instance: InstanceInfo, location: DatabaseLocation): Promise<ModeChoice> {
    if (this.rb.dryRun) return { mode: this.p.mode ?? 'dump', why: 'a dry run cannot reach the database to check replication' };
    return this.chooseMode(instance, location);
  }

  /**
   * Seed 002 takes the database out of Terraform's state before a new one is
   * made: made with the RDS API instead, a source Terraform still manages
   * would be replaced by an empty database at its address on the next apply.
   * In Terraform mode the source must be at `instanceAddress`, the address
   * the run removes from state.
   */
  private async refuseUnmanagedTerraform(): Promise<void> {
    const { p } = this;
    const prov = p.provisioning;
    const state = prov.mode === 'aws' ? prov.terraformState : terraformDir(prov);
    if (!state || !patched('db-migration-terraform-managed')) return;
    const { addresses } = await quick.terraformFindManaged({
      ...state,
      type: 'aws_db_instance',
      attribute: 'identifier',
      value: p.sourceInstance,
    });
    if (prov.mode === 'aws') {
      refuseIf(
        addresses.length > 0,
        'provisioning.mode',
        `${p.sourceInstance} is managed by Terraform (${addresses.join(', ')} in ${state.dir}, workspace ${state.workspace}); made with the RDS API, the next terraform apply would recreate an empty database at that address: use provisioning.mode terraform`,
      );
    } else {
      refuseIf(
        addresses.length > 0 && !addresses.includes(prov.instanceAddress),
        'provisioning.instanceAddress',
        `${p.sourceInstance} is ${addresses.join(', ')} in the ${prov.workspace} state, not ${prov.instanceAddress}: removing ${prov.instanceAddress} from state would not protect it`,
      );
    }
  }

  private async openAccess(source: InstanceInfo): Promise<void> {
    const { rb, p } = this;
    if (!p.temporaryAccess) return rb.skip('open-access', 'no temporary access configured: the worker reaches the database directly');
    const cidr = p.temporaryAccess.cidr;
    this.sourceWasPublic = source.publiclyAccessible;
    await rb.change(
      'open-access',
      `make ${p.sourceInstance} reachable from ${cidr} for the copy (public access and a security-group rule)`,
      () =>
        long(p.instanceTimeoutMs).openTemporaryAccess({
          aws: p.aws,
          identifier: p.sourceInstance,
          cidr,
          marker: this.marker,
          deadline: this.deadline(p.instanceTimeoutMs),
        }),
      {
        // Registered before it runs: access opened half-way is closed too.
        undo: {
          summary: `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`,
          run: () => this.closeTemporaryAccess(),
        },
        detail: (r) => `${r.madePublic ? 'made public' : 'was already public'}; ${r.ruleAdded ? 'added' : 'found'} the rule for ${cidr}`,
        dryResult: { madePublic: true, ruleAdded: true },
      },
    );
  }

  private async closeAccess(): Promise<void> {
    const { rb, p } = this;
    if (!p.temporaryAccess) return rb.skip('close-access', 'no temporary access to close');
    await rb.change(
      'close-access',
      `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`,
      () => this.closeTemporaryAccess(),
      {
        detail: (r) => `removed ${r.rulesRemoved} rule(s)${r.madePrivate.length ? `; made ${r.madePrivate.join(', ')} private again` : ''}`,
        dryResult: { rulesRemoved: 0, madePrivate: [] },
      },
    );
  }

  private closeTemporaryAccess() {
    const { p } = this;
    return long(p.instanceTimeoutMs).closeTemporaryAccess({
      aws: p.aws,
      instances: [
        { identifier: p.sourceInstance, wasPublic: this.sourceWasPublic },
        { identifier: p.newInstance.identifier, wasPublic: this.newWasPublic },
      ],
      marker: this.marker,
      deadline: this.deadline(p.instanceTimeoutMs),
    });
  }

  private async inspectSource(source: DatabaseLocation, pgDumpVersion: string): Promise<DatabaseInspection | undefined> {
    const { rb, p } = this;
    if (rb.dryRun && p.temporaryAccess) {
      rb.skip('inspect-source', `would connect to ${p.sourceInstance} once temporary access is open`);
      return undefined;
    }
    const inspected = await rb.read(
      'inspect-source',
      `connect to ${p.sourceInstance}/${p.database} as ${p.credentials.app.username}: size, tables, schema migrations`,
      () => quick.inspectDatabase({ login: this.appLogin(source), sources: this.sources }),
      {
        detail: (i) =>
          `PostgreSQL ${i.serverVersion}, ${formatBytes(i.sizeBytes)}, ${i.tables.length} tables (~${i.tables.reduce((s, t) => s + t.estimatedRows, 0)} rows), ` +
          `${i.sequences} sequences, ${i.schemaMigration ? `${i.schemaMigration.rows} schema migrations` : 'no schema_migration table'}`,
      },
    );
    // Found before the writers stop: pg_dump refuses servers of a newer major version.
    if (major(pgDumpVersion) < major(inspected.serverVersion)) {
      throw ApplicationFailure.create({
        type: 'ToolTooOld',
        message: `the workers' pg_dump ${pgDumpVersion} cannot dump PostgreSQL ${inspected.serverVersion}: install a client of that version or newer (PG_BIN)`,
        nonRetryable: true,
      });
    }
    return inspected;
  }

  private async stopWriters(writers: WriterState[], step: 'stop-writers' | 'window-stop-writers' = 'stop-writers'): Promise<void> {
    const { rb, p } = this;
    const stopped = writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: 0 }));
    const asTheyWere = writers.map((w) => ({
      cluster: w.cluster,
      service: w.service,
      desiredCount: w.desiredCount,
      taskDefinition: w.taskDefinition,
    }));
    await rb.change(
      step,
      `stop ${this.writerNames(writers)}: desired count to 0, then wait until no task of theirs runs`,
      () => this.setAndWait(stopped),
      {
        undo: {
          summary: `start ${this.writerNames(writers)} again on ${p.sourceInstance} as they were (task definitions and desired counts ${writers.map((w) => w.desiredCount).join(', ')}), unless they already run on ${p.newInstance.identifier}`,
          run: async () => (this.writersOnNewDb ? undefined : this.setAndWait(asTheyWere)),
        },
        detail: () => `no task of ${this.writerNames(writers)} runs`,
        dryResult: [],
      },
    );
  }

  private async backup(source: DatabaseLocation, inspected: DatabaseInspection | undefined): Promise<BackupResult> {
    const { rb, p } = this;
    const where = `s3://${this.backupLocation.bucket}/${this.backupLocation.prefix}`;
    return rb.change(
      'backup',
      `pg_dump ${p.sourceInstance}/${p.database}${inspected ? ` (${formatBytes(inspected.sizeBytes)})` : ''} with ${p.parallelJobs} jobs to ${where}`,
      () =>
        long(p.copyTimeoutMs).backupDatabase({
          source: this.appLogin(source),
          sources: this.sources,
          storage: this.backupLocation,
          jobs: p.parallelJobs,
        }),
      {
        detail: (b) =>
          `${b.files} files, ${formatBytes(b.bytes)} in ${where}${b.reused ? ' (found complete from an earlier attempt)' : ''}`,
        dryResult: { bucket: this.backupLocation.bucket, prefix: this.backupLocation.prefix, files: 0, bytes: 0, pgDumpVersion: '' },
      },
    );
  }

  private async detachOldState(): Promise<void> {
    const { rb, p } = this;
    const tf = p.provisioning;
    if (tf.mode !== 'terraform')
      return rb.skip('detach-old-state', 'the new instance is made with the RDS API: no Terraform state to change');
    // No undo: once Terraform has made the new instance at this address, putting the old one back would fight it.
    await rb.change(
      'detach-old-state',
      `terraform state rm ${tf.instanceAddress} (workspace ${tf.workspace}), so Terraform cannot delete ${p.sourceInstance}`,
      () => quick.terraformStateRm({ ...terraformDir(tf), address: tf.instanceAddress }),
      {
        detail: (r) =>
          `${tf.instanceAddress} ${r.removed ? 'removed from' : 'was already out of'} state; ${p.sourceInstance} itself untouched (re-import it with \`terraform import\` if the migration is abandoned)`,
      },
    );
  }

  private async createNewInstance(source: InstanceInfo): Promise<InstanceInfo> {
    const { rb, p } = this;
    const id = p.newInstance.identifier;
    const dryResult: InstanceInfo = {
      ...source,
      identifier: id,
      endpoint: { host: `(endpoint of ${id})`, port: source.endpoint?.port ?? 5432 },
      publiclyAccessible: false,
      tags: {},
    };
    const how =
      p.provisioning.mode === 'terraform'
        ? `terraform plan -target ${p.provisioning.instanceAddress} -target ${p.provisioning.passwordAddress} and apply`
        : `the RDS API (${p.newInstance.instanceClass ?? source.instanceClass}, ${source.engine} ${p.newInstance.engineVersion ?? source.engineVersion})`;
    return rb.change(
      'create-new-instance',
      `create ${id} with ${how}, wait until available${p.temporaryAccess ? ', open it to the copy' : ''}`,
      async () => {
        this.newInstanceMayExist = true;
        const created = await this.provision(source);
        this.newWasPublic = created.publiclyAccessible;
        if (p.temporaryAccess) {
          await long(p.instanceTimeoutMs).openTemporaryAccess({
            aws: p.aws,
            identifier: id,
            cidr: p.temporaryAccess.cidr,
            marker: this.marker,
            deadline: this.deadline(p.instanceTimeoutMs),
          });
        }
        return created;
      },
      { detail: (c) => `${id} available at ${c.endpoint?.host}:${c.endpoint?.port} (kept if the run rolls back)`, dryResult },
    );
  }

  private async provision(source: InstanceInfo): Promise<InstanceInfo> {
    const { p } = this;
    const waits = long(p.instanceTimeoutMs);
    const deadline = this.deadline(p.instanceTimeoutMs);
    const emulate: MappedDatabaseSpec | undefined = p.endpointMap
      ? {
          dbName: p.database,
          admin: p.credentials.admin,
          adminField: 'credentials.admin',
          sources: this.sources,
          tls: p.tls,
          endpointMap: p.endpointMap,
        }
      : undefined;
    if (p.provisioning.mode === 'aws') {
      return waits.createDbInstance({
        aws: p.aws,
        identifier: p.newInstance.identifier,
        like: source,
        ...(p.newInstance.instanceClass ? { instanceClass: p.newInstance.instanceClass } : {}),
        ...(p.newInstance.engineVersion ? { engineVersion: p.newInstance.engineVersion } : {}),
        ...(p.newInstance.allocatedStorageGb ? { allocatedStorageGb: p.newInstance.allocatedStorageGb } : {}),
        dbName: p.database,
        admin: p.credentials.admin,
        adminField: 'credentials.admin',
        sources: this.sources,
        tls: p.tls,
        ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}),
        deadline,
      });
    }
    const tf = p.provisioning;
    const where = terraformDir(tf);
    const planFile = `db-migration-${this.runTag}.tfplan`;
    const plan = await long(p.instanceTimeoutMs).terraformPlan({ ...where, targets: [tf.instanceAddress, tf.passwordAddress], planFile });
    refuseUnexpectedDestroys(plan, [tf.instanceAddress, tf.passwordAddress], planFile);
    await long(p.instanceTimeoutMs).terraformApply({ ...where, planFile, sha256: plan.sha256 });
    await long(p.instanceTimeoutMs).terraformDiscardPlan({ planFile }); // it holds the generated password
    return waits.waitForDbInstance({ aws: p.aws, identifier: p.newInstance.identifier, deadline, ...(emulate ? { emulate } : {}) });
  }

  private async restore(target: DatabaseLocation, backup: BackupResult, inspected: DatabaseInspection | undefined): Promise<RestoreResult> {
    const { rb, p } = this;
    return rb.change(
      'restore',
      `pg_restore -j ${p.parallelJobs} into ${target.instance}/${p.database} as ${this.newApp.username}, into a freshly created database`,
      () =>
        long(p.copyTimeoutMs).restoreBackup({
          storage: this.backupLocation,
          admin: this.adminLogin(target),
          app: this.newAppLogin(target),
          sources: this.sources,
          jobs: p.parallelJobs,
          encoding: inspected?.encoding ?? 'UTF8',
        }),
      {
        detail: (r) => `${formatBytes(backup.bytes)} downloaded in ${seconds(r.downloadMs)}, restored in ${seconds(r.restoreMs)}`,
        dryResult: { bytes: 0, downloadMs: 0, restoreMs: 0 },
      },
    );
  }

  private async verify(source: DatabaseLocation, target: DatabaseLocation): Promise<VerifyReport> {
    const { rb, p } = this;
    // A change only in the sense that it needs the copy: a dry run has none to check.
    return rb.change(
      'verify',
      `compare ${target.instance} with ${p.sourceInstance}: every table's row count and content checksum, sequences, schema migrations`,
      () => long(p.copyTimeoutMs).verifyCopy({ source: this.appLogin(source), target: this.newAppLogin(target), sources: this.sources }),
      {
        detail: (v) =>
          `${v.tables.length} tables and ${v.rows} rows equal; ${v.sequences.length} sequences at the same values; ` +
          `${v.schemaMigration ? `${v.schemaMigration.rows} schema migrations` : 'no schema_migration table'}`,
        dryResult: { tables: [], rows: 0, sequences: [], schemaMigration: null },
      },
    );
  }

  private async createAppRole(target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    await rb.change(
      'create-app-role',
      `log in to ${target.instance} as ${p.credentials.admin.username} and create the role ${this.newApp.username}`,
      () => quick.ensureAppRole({ admin: this.adminLogin(target), app: this.newApp, appField: this.newAppField, sources: this.sources }),
      {
        detail: (r) =>
          `${r.created ? 'created' : 'updated'} role ${this.newApp.username}${r.grantedToAdmin ? `, granted to ${p.credentials.admin.username} so it can hand over ownership` : ''}`,
        dryResult: { created: true, grantedToAdmin: false },
      },
    );
  }

  private cutoverPrompt(created: InstanceInfo, verified: VerifyReport, writers: WriterState[], source: InstanceInfo): string {
    const copy = this.rb.dryRun
      ? 'a verified copy'
      : `an exact copy (${verified.tables.length} tables, ${verified.rows} rows, ${verified.sequences.length} sequences)`;
    // Issue 11.3: the approver decides knowing what the new instance does not carry over.
    const gaps = this.rb.dryRun ? [] : protectionGaps(source, created);
    const lacking = gaps.length ? ` It is LESS PROTECTED than ${source.identifier}, lacking: ${gaps.join('; ')}.` : '';
    return `${created.identifier} holds ${copy}.${lacking} Point ${this.writerNames(writers)} at ${created.endpoint!.host} and start them?`;
  }

  private async repointWriters(writers: WriterState[], created: InstanceInfo): Promise<WriterTarget[]> {
    const { rb, p } = this;
    return rb.change(
      'repoint-writers',
      `register task definitions of ${this.writerNames(writers)} with ${writers[0]?.hostVariable ?? 'the host'}=${created.endpoint!.host}`,
      () => quick.repointWriters({ aws: p.aws, writers, endpoint: created.endpoint! }),
      {
        detail: (r) => r.map((w) => `${w.service} -> ${shortArn(w.taskDefinition!)}`).join(', '),
        dryResult: writers.map((w) => ({
          cluster: w.cluster,
          service: w.service,
          desiredCount: w.desiredCount,
          taskDefinition: '(new revision)',
        })),
      },
    );
  }

  /** Returns how long the writers were stopped, from `stoppedAt` until they run on the new database. */
  private async restoreWriters(
    repointed: WriterTarget[],
    created: InstanceInfo,
    stoppedAt: string,
  ): Promise<DbMigrationResult['writersStopped']> {
    // The point of no return: from here a failure must not move the writers back (they may have written already).
    this.writersOnNewDb = true;
    const stopped = () => ({ from: stoppedAt, to: new Date().toISOString(), ms: Date.now() - Date.parse(stoppedAt) });
    await this.rb.change(
      'restore-writers',
      `start ${this.writerNames(repointed)} on ${created.identifier}: restore desired counts ${repointed.map((w) => w.desiredCount).join(', ')}`,
      () => this.setAndWait(repointed),
      {
        detail: (r) => `${r.map((w) => `${w.service}: ${w.running} running`).join(', ')}; writers were stopped ${seconds(stopped().ms)}`,
        dryResult: [],
      },
    );
    return stopped();
  }

  /** "Once we are satisfied": deletes the old instance after approval; a rejection keeps it, and the run ends there. */
  /** `counted`: each table's rows when the copy was verified (dump) or compared in the window (online). */
  private async deleteOldInstance(
    source: DatabaseLocation,
    created: InstanceInfo,
    sourceInfo: InstanceInfo,
    counted: { tables: Record<string, number> },
  ): Promise<DbMigrationResult['oldInstance']> {
    const { rb, p } = this;
    const lifted = sourceInfo.protection?.deletionProtection ? `; its deletion protection is lifted first` : '';
    const kept = await this.approvedOrReason(
      'delete-old',
      `The writers run on ${created.identifier}. Delete ${p.sourceInstance} (${created.identifier} is recounted against verification first; a final snapshot ${this.finalSnapshotId} is taken${lifted})?`,
    );
    if (kept) {
      rb.skip('delete-old-instance', `${p.sourceInstance} kept: ${kept}`);
      return { deleted: false, reason: kept };
    }
    const deleted = await rb.change(
      'delete-old-instance',
      `recount ${created.identifier} against verification, then delete ${p.sourceInstance} after a final snapshot ${this.finalSnapshotId}`,
      async () => {
        // Issue 11.2: the old instance is the only other copy; it goes only while the new one still holds what was verified.
        if (patched('recheck-before-delete')) {
          await quick.recheckNewDatabase({ login: this.newAppLogin(this.locate(created)), sources: this.sources, verified: counted });
        }
        this.oldDeleteStarted = true;
        return long(p.instanceTimeoutMs).deleteDbInstance({
          aws: p.aws,
          identifier: p.sourceInstance,
          finalSnapshotId: this.finalSnapshotId,
          ...(p.endpointMap
            ? { mapped: { location: source, admin: p.credentials.admin, adminField: 'credentials.admin', sources: this.sources } }
            : {}),
          deadline: this.deadline(p.instanceTimeoutMs),
        });
      },
      {
        detail: (d) => `deleted ${p.sourceInstance}; final snapshot ${d.finalSnapshotId}`,
        dryResult: { finalSnapshotId: this.finalSnapshotId, alreadyDeleted: false },
      },
    );
    return { deleted: true, finalSnapshot: deleted.finalSnapshotId };
  }

  /** Resolves when approved; returns why not when rejected or timed out (the old instance is then kept, and the run ends). */
  private async approvedOrReason(checkpoint: 'delete-old', prompt: string): Promise<string | undefined> {
    try {
      await this.rb.checkpoint(checkpoint, prompt);
      return undefined;
    } catch (err) {
      // After the cutover there is nothing to roll back: keeping the old instance is the safe stop.
      if (err instanceof ApplicationFailure && err.type === FailureType.rejected) return describeError(err);
      throw err;
    }
  }

  // --- the deploy pipeline --------------------------------------------------------------------------

  /**
   * Seed 002: "the deployment process for the API should also be stopped
   * because it touches the database". Disabled before anything changes and
   * enabled again however the run ends: the undo outlives the point of no
   * return. A transition an operator disabled is left disabled.
   */
  private async pauseDeploys(): Promise<void> {
    const { rb, p } = this;
    const pipeline = p.deployPipeline;
    if (!this.pausesDeploys || !pipeline) {
      rb.skip('pause-deploys', pipeline ? 'started before deploys were paused' : 'no deploy pipeline configured (deployPipeline)');
      return rb.skip('resume-deploys', 'nothing paused');
    }
    await rb.change(
      'pause-deploys',
      `disable the transition into stage ${pipeline.stage} of pipeline ${pipeline.name}, so no deploy reaches the database during the run`,
      () => quick.pauseStageTransition({ ...this.deployTransition(pipeline), holder: this.deployHolder() }),
      {
        // Registered before it runs, and kept past the point of no return: the pipeline runs again however the run ends.
        undo: {
          summary: `enable the transition into ${pipeline.stage} of ${pipeline.name} again (unless an operator had disabled it)`,
          run: () => quick.resumeStageTransition({ ...this.deployTransition(pipeline), holder: this.deployHolder() }),
          keepAfterCommit: true,
        },
        detail: (r) =>
          r.found === 'operator'
            ? `already disabled by ${r.state.lastChangedBy ?? 'an operator'} ("${r.state.disabledReason ?? ''}"): left disabled, not re-enabled after the run`
            : `transition into ${pipeline.stage} disabled${r.found === 'runs' ? ' (with the other runbook runs that hold it)' : ''}: "${r.state.disabledReason ?? ''}"`,
        dryResult: { found: 'enabled', state: { enabled: false } },
      },
    );
  }

  private async resumeDeploys(): Promise<void> {
    const { rb, p } = this;
    const pipeline = p.deployPipeline;
    if (!this.pausesDeploys || !pipeline) return;
    await rb.change(
      'resume-deploys',
      `enable the transition into stage ${pipeline.stage} of pipeline ${pipeline.name} again (unless an operator had disabled it)`,
      () => quick.resumeStageTransition({ ...this.deployTransition(pipeline), holder: this.deployHolder() }),
      {
        detail: (r) =>
          r.outcome === 'enabled'
            ? `transition into ${pipeline.stage} enabled: deploys flow again`
            : r.outcome === 'still-held'
              ? `other runbook runs still hold ${pipeline.name}: "${r.state.disabledReason ?? ''}"`
              : r.state.enabled
                ? `already enabled (by ${r.state.lastChangedBy ?? 'someone'})`
                : `left disabled as an operator set it: "${r.state.disabledReason ?? ''}"`,
        dryResult: { outcome: 'enabled', state: { enabled: true } },
      },
    );
  }

  private deployTransition(pipeline: { name: string; stage: string }) {
    return { aws: this.p.aws, pipeline: pipeline.name, stage: pipeline.stage, field: 'deployPipeline' };
  }

  private deployHolder() {
    return { runbook: 'db-migration', runId: workflowInfo().runId };
  }

  // --- online mode ----------------------------------------------------------------------------------

  /** Online mode's steps, in order: the copy runs while the writers write; they stop only for the window after `cutover`. */
  private async runOnline(
    found: Preflight,
    source: DatabaseLocation,
    inspected: DatabaseInspection | undefined,
  ): Promise<DbMigrationResult> {
    const { rb } = this;
    for (const step of ['stop-writers', 'backup', 'restore', 'verify'] as const)
      rb.skip(step, 'online mode: the writers keep running while logical replication copies the rows');
    await this.detachOldState();
    const created = await this.createNewInstance(found.source);
    const target = this.locate(created);
    await this.createAppRole(target);
    const schema = await this.copySchema(source, target, inspected);
    await this.publish(source, target);
    await this.subscribe(source, target);
    const synced = await this.initialSync(source, target, schema.fingerprint);
    await rb.checkpoint('cutover', await this.onlineCutoverPrompt(source, target, created, found.source, synced, found.writers, inspected));
    // The window: from here the writers are stopped until they run on the new database.
    const stoppedAt = new Date().toISOString();
    await this.stopWriters(found.writers, 'window-stop-writers');
    await this.catchUp(source, target, schema.fingerprint);
    await this.copySequences(source, target);
    const counted = await this.compareCounts(source, target);
    const repointed = await this.repointWriters(found.writers, created);
    const writersStopped = await this.restoreWriters(repointed, created, stoppedAt);
    rb.commit(`the writers run on ${created.identifier}; moving them back would lose their writes`);
    await this.dropReplication(source, target);
    await this.closeAccess();
    const oldInstance = await this.deleteOldInstance(source, created, found.source, { tables: counted.perTable ?? {} });
    await this.resumeDeploys();
    return {
      mode: 'online',
      writersStopped,
      source: { instance: this.p.sourceInstance, endpoint: found.source.endpoint?.host ?? '' },
      newInstance: { instance: created.identifier, endpoint: created.endpoint?.host ?? '' },
      backup: null,
      verified: {
        tables: counted.tables,
        rows: counted.rows,
        sequences: inspected?.sequences ?? 0,
        schemaMigrationRows: inspected?.schemaMigration?.rows ?? null,
      },
      writers: repointed.map((w) => ({ service: w.service, taskDefinition: w.taskDefinition ?? '', desiredCount: w.desiredCount })),
      oldInstance,
    };
  }

  private async copySchema(
    source: DatabaseLocation,
    target: DatabaseLocation,
    inspected: DatabaseInspection | undefined,
  ): Promise<{ tables: number; fingerprint: string }> {
    const { rb, p } = this;
    return rb.change(
      'copy-schema',
      `pg_dump --schema-only ${p.sourceInstance}/${p.database}, restore it into a freshly created ${target.instance}/${p.database} as ${this.newApp.username}`,
      () =>
        long(p.copyTimeoutMs).copySchema({
          source: this.appLogin(source),
          admin: this.adminLogin(target),
          app: this.newAppLogin(target),
          sources: this.sources,
          encoding: inspected?.encoding ?? 'UTF8',
        }),
      { detail: (r) => `${r.tables} tables, their keys, indexes and sequences, no rows`, dryResult: { tables: 0, fingerprint: '' } },
    );
  }

  /** The publication and slot on the source; undone (with the subscription) by any failure before the writers move. */
  private async publish(source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    const { name } = this.replication;
    await rb.change(
      'publish',
      `create the publication ${name} of every table and the replication slot ${name} on ${p.sourceInstance}`,
      () => quick.publish({ replication: this.replicationLogin(source), sources: this.sources, names: this.replication }),
      {
        // Registered before it runs: a slot made by an attempt whose result was lost is dropped too.
        undo: {
          summary: `drop the subscription, publication and replication slot ${name}`,
          run: () => this.dropReplicationObjects(source, target),
        },
        detail: (r) =>
          `publication ${name} ${r.createdPublication ? 'created' : 'found'}; slot ${name} ${r.createdSlot ? 'created' : 'found'}`,
        dryResult: { createdPublication: true, createdSlot: true },
      },
    );
  }

  private async subscribe(source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    const { name } = this.replication;
    await rb.change(
      'subscribe',
      `create the subscription ${name} on ${target.instance}: the initial copy starts, the writers keep writing`,
      () =>
        quick.subscribe({
          source: this.replicationLogin(source),
          target: this.adminLogin(target),
          sources: this.sources,
          names: this.replication,
        }),
      {
        detail: (r) =>
          `subscription ${name} ${r.created ? 'created' : 'found (made by an earlier attempt)'} on ${target.instance}, replicating from ${p.sourceInstance} as ${this.replicationLogin(source).credentials.username}`,
        dryResult: { created: true },
      },
    );
  }

  private async initialSync(source: DatabaseLocation, target: DatabaseLocation, fingerprint: string): Promise<SyncProgress | undefined> {
    const { rb, p } = this;
    if (rb.dryRun) {
      rb.skip('initial-sync', `would wait until every table of ${p.sourceInstance} is copied and streaming`);
      return undefined;
    }
    return rb.read(
      'initial-sync',
      `wait until every table is copied and streaming (per-table state and lag in the heartbeat); fail on a schema change on ${p.sourceInstance}`,
      () =>
        long(p.copyTimeoutMs).waitForSync({
          ...this.replicationPair(source, target),
          fingerprint,
          deadline: this.deadline(p.copyTimeoutMs),
        }),
      {
        detail: (s) => describeSync(s),
      },
    );
  }

  private async onlineCutoverPrompt(
    source: DatabaseLocation,
    target: DatabaseLocation,
    created: InstanceInfo,
    sourceInfo: InstanceInfo,
    synced: SyncProgress | undefined,
    writers: WriterState[],
    inspected: DatabaseInspection | undefined,
  ): Promise<string> {
    const lag = this.rb.dryRun ? synced : await quick.replicationLag(this.replicationPair(source, target));
    const now = lag
      ? `${lag.ready}/${lag.tables} tables streaming, ${lag.lagBytes} bytes and ${lag.lagSeconds.toFixed(1)} s behind`
      : 'every table streaming';
    const gaps = this.rb.dryRun ? [] : protectionGaps(sourceInfo, created);
    const lacking = gaps.length ? ` It is LESS PROTECTED than ${this.p.sourceInstance}, lacking: ${gaps.join('; ')}.` : '';
    return (
      `${created.identifier} follows ${this.p.sourceInstance} (${now}).${lacking} Cut over? The window: stop ${this.writerNames(writers)}, ` +
      `wait until ${created.identifier} has every write, set the sequences, compare every table's row count` +
      `${inspected ? ` (${inspected.tables.length} tables, ~${inspected.tables.reduce((sum, t) => sum + t.estimatedRows, 0)} rows)` : ''}, start the writers on ${created.endpoint!.host}. ` +
      `Planned: the writers' stop and start, plus seconds for the catch-up and the counts (which read every table once).`
    );
  }

  private async catchUp(source: DatabaseLocation, target: DatabaseLocation, fingerprint: string): Promise<void> {
    const { rb, p } = this;
    await rb.change(
      'catch-up',
      `wait until ${target.instance} has confirmed ${p.sourceInstance}'s current WAL position`,
      () =>
        long(p.writersTimeoutMs).catchUp({
          ...this.replicationPair(source, target),
          fingerprint,
          deadline: this.deadline(p.writersTimeoutMs),
        }),
      {
        detail: (r) => `confirmed ${r.lsn} after ${seconds(r.waitedMs)}`,
        dryResult: { lsn: '', waitedMs: 0 },
      },
    );
  }

  private async copySequences(source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    await rb.change(
      'copy-sequences',
      `set every sequence of ${target.instance} past ${p.sourceInstance}'s last value (setval; replication does not carry sequences)`,
      () => quick.copySequences({ source: this.appLogin(source), target: this.adminLogin(target), sources: this.sources }),
      {
        detail: (r) => `${r.sequences} sequences set ahead of the source`,
        dryResult: { sequences: 0 },
      },
    );
  }

  private async compareCounts(
    source: DatabaseLocation,
    target: DatabaseLocation,
  ): Promise<{ tables: number; rows: number; perTable?: Record<string, number> }> {
    const { rb, p } = this;
    return rb.change(
      'compare-counts',
      `compare every table's row count on ${target.instance} with ${p.sourceInstance}`,
      () => long(p.copyTimeoutMs).compareCounts({ source: this.appLogin(source), target: this.newAppLogin(target), sources: this.sources }),
      {
        detail: (r) => `${r.tables} tables and ${r.rows} rows equal`,
        dryResult: { tables: 0, rows: 0, perTable: {} },
      },
    );
  }

  /** After the cutover nothing more may come from the old instance, and a slot left there would keep its WAL forever. */
  private async dropReplication(source: DatabaseLocation, target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    await rb.change(
      'drop-replication',
      `drop the subscription on ${target.instance}, the publication and every replication slot of the run on ${p.sourceInstance}`,
      () => this.dropReplicationObjects(source, target),
      { detail: (r) => (r.dropped.length ? `dropped ${r.dropped.join(', ')}` : 'nothing left to drop'), dryResult: { dropped: [] } },
    );
  }

  private dropReplicationObjects(source: DatabaseLocation, target: DatabaseLocation) {
    return long(this.p.writersTimeoutMs).dropReplication(this.replicationPair(source, target));
  }

  /** Source and target as the replication activities take them: the replication login on the source, admin on the target. */
  private replicationPair(source: DatabaseLocation, target: DatabaseLocation) {
    return { source: this.replicationLogin(source), target: this.adminLogin(target), sources: this.sources, names: this.replication };
  }

  // --- helpers --------------------------------------------------------------------------------------

  private async setAndWait(targets: WriterTarget[]) {
    await quick.setWriters({ aws: this.p.aws, targets });
    return long(this.p.writersTimeoutMs).waitForWriters({ aws: this.p.aws, targets, deadline: this.deadline(this.p.writersTimeoutMs) });
  }

  /** Every credential and the instance it goes to; the new instance's Terraform outputs exist only once Terraform has made it. */
  private credentialUses(): CredentialUse[] {
    const { credentials, sourceInstance, newInstance, provisioning } = this.p;
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

  private locate(instance: InstanceInfo): DatabaseLocation {
    const { p } = this;
    return {
      instance: instance.identifier,
      endpoint: instance.endpoint!,
      database: p.database,
      tls: p.tls,
      ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}),
    };
  }

  private appLogin(location: DatabaseLocation): Login {
    return { location, credentials: this.p.credentials.app, field: 'credentials.app' };
  }

  private adminLogin(location: DatabaseLocation): Login {
    return { location, credentials: this.p.credentials.admin, field: 'credentials.admin' };
  }

  private get newApp(): Credentials {
    return this.p.credentials.newApp ?? this.p.credentials.app;
  }

  private get newAppField(): string {
    return this.p.credentials.newApp ? 'credentials.newApp' : 'credentials.app';
  }

  private newAppLogin(location: DatabaseLocation): Login {
    return { location, credentials: this.newApp, field: this.newAppField };
  }

  /** The login the new instance replicates from the old one with. */
  private replicationLogin(location: DatabaseLocation): Login {
    const { credentials } = this.p;
    return credentials.replication
      ? { location, credentials: credentials.replication, field: 'credentials.replication' }
      : { location, credentials: credentials.admin, field: 'credentials.admin' };
  }

  private writerNames(writers: { service: string }[]): string {
    return writers.map((w) => w.service).join(', ');
  }

  /** Fixed when the step starts, so a retried attempt keeps the same deadline. */
  private deadline(ms: number): string {
    return new Date(Date.now() + ms).toISOString();
  }
}

/**
 * The targeted plan may create or replace the instance and its password (the
 * seed regenerates it), and must destroy nothing else: the one plan guard
 * (src/terraform-plan.ts), with both targets allowed.
 */
function refuseUnexpectedDestroys(plan: PlanSummary, targets: string[], planFile: string): void {
  const problems = planProblems(plan, { allow: targets });
  if (problems.length) {
    throw ApplicationFailure.create({
      type: 'PlanRefused',
      message: `the plan ${planFile} was refused, nothing applied: ${problems.join('; ')}`,
      nonRetryable: true,
    });
  }
}

/** One line for a step detail: tables streaming, the ones still copying, the lag. */
function describeSync(p: SyncProgress): string {
  return `${p.ready}/${p.tables} tables streaming${p.pending.length ? ` (${p.pending.join(', ')})` : ''}; lag ${p.lagBytes} bytes, ${p.lagSeconds.toFixed(1)} s`;
}

function terraformDir(tf: TerraformProvisioning): { dir: string; workspace: string; cliConfig?: string } {
  return { dir: tf.dir, workspace: tf.workspace, ...(tf.cliConfig ? { cliConfig: tf.cliConfig } : {}) };
}

function verifiedCounts(verified: VerifyReport): { tables: Record<string, number> } {
  return { tables: Object.fromEntries(verified.tables.map((t) => [t.table, t.rows])) };
}

function major(version: string): number {
  return Number.parseInt(version, 10);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
