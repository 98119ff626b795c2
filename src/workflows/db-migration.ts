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
 * Until the writers start on the new database, any failure or rejection starts
 * them again on the old one, untouched; the new instance is left for
 * inspection and named in the error. Passwords never enter this workflow:
 * it passes secret references, and activities resolve them.
 */
import { ApplicationFailure, isCancellation, workflowInfo } from '@temporalio/workflow';
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
import { planProblems, type PlanSummary } from '../terraform-plan.js';
import { definePlan, describeError, refuseIf, refuseIfHeld, runRunbook, stepActivities, type Runbook } from './engine/index.js';
import { failureType } from './engine/errors.js';

export interface TerraformProvisioning {
  mode: 'terraform';
  dir: string;
  workspace: string;
  /** The instance's resource address, e.g. `aws_db_instance.database`. */
  instanceAddress: string;
  /** The generated password's address, e.g. `random_string.db_password`. */
  passwordAddress: string;
}

export type Provisioning = { mode: 'aws' } | TerraformProvisioning;

export interface DbMigrationParams {
  aws: AwsConnection;
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
  };
  temporaryAccess?: { cidr: string };
  tls: 'require' | 'disable';
  parallelJobs: number;
  instanceTimeoutMs: number;
  writersTimeoutMs: number;
  copyTimeoutMs: number;
  endpointMap?: EndpointMap;
}

export interface DbMigrationResult {
  source: { instance: string; endpoint: string };
  newInstance: { instance: string; endpoint: string };
  backup: { location: string; files: number; bytes: number };
  verified: { tables: number; rows: number; sequences: number; schemaMigrationRows: number | null };
  writers: { service: string; taskDefinition: string; desiredCount: number }[];
  oldInstance: { deleted: true; finalSnapshot: string } | { deleted: false; reason: string };
}

export const dbMigrationPlan = definePlan({
  steps: [
    'preflight',
    'open-access',
    'inspect-source',
    'stop-writers',
    'backup',
    'detach-old-state',
    'create-new-instance',
    'create-app-role',
    'restore',
    'verify',
    'close-access',
    'cutover',
    'repoint-writers',
    'restore-writers',
    'delete-old',
    'delete-old-instance',
  ],
  checkpoints: ['cutover', 'delete-old'],
});

type Activities = RdsActivities & WriterActivities & PostgresActivities & PgDumpActivities & ReturnType<typeof createSecretActivities> & TerraformActivities & DeployRunsActivities;

const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' } as const;

/** Reads and single AWS calls. */
const quick = stepActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: { ...RETRY, maximumAttempts: 8 } });

/**
 * Long work (waits, copies, checks) heartbeats: a killed worker's attempt is
 * retried on another within the heartbeat timeout, and resumes where it heartbeated.
 */
function long(timeoutMs: number) {
  return stepActivities<Activities>({ startToCloseTimeout: timeoutMs + 5 * 60_000, heartbeatTimeout: '10 seconds', retry: { ...RETRY, maximumAttempts: 10 } });
}

export async function dbMigration(input: RunbookInput): Promise<DbMigrationResult> {
  return runRunbook(input, dbMigrationPlan, async (rb: Runbook<DbMigrationParams>) => {
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
  /** Whether each instance was public before the run opened it, so closing puts back exactly that. */
  private sourceWasPublic = false;
  private newWasPublic = false;

  constructor(private readonly rb: Runbook<DbMigrationParams>) {
    const p = (this.p = rb.params);
    const { workflowId, runId } = workflowInfo();
    this.sources = { aws: p.aws, ...(p.provisioning.mode === 'terraform' ? { terraform: { dir: p.provisioning.dir, workspace: p.provisioning.workspace } } : {}) };
    this.marker = `runbook ${workflowId}`;
    this.backupLocation = { aws: p.aws, bucket: p.backup.bucket, prefix: `${p.backup.prefix}${p.sourceInstance}/${runId}/` };
    this.runTag = runId.replace(/[^a-z0-9]/gi, '').slice(0, 12);
    this.finalSnapshotId = `${p.sourceInstance}-final-${this.runTag}`;
  }

  /** The seed's steps, in its order. */
  async run(): Promise<DbMigrationResult> {
    const found = await this.preflight();
    const source = this.locate(found.source);
    await this.openAccess(found.source);
    const inspected = await this.inspectSource(source, found.pgDumpVersion);
    await this.stopWriters(found.writers);
    const backup = await this.backup(source, inspected);
    await this.detachOldState();
    const created = await this.createNewInstance(found.source);
    const target = this.locate(created);
    await this.createAppRole(target);
    await this.restore(target, backup, inspected);
    const verified = await this.verify(source, target);
    await this.closeAccess();
    await this.rb.checkpoint('cutover', this.cutoverPrompt(created, verified, found.writers));
    const repointed = await this.repointWriters(found.writers, created);
    await this.restoreWriters(repointed, created);
    this.rb.commit(`the writers run on ${created.identifier}; moving them back would lose their writes`);
    const oldInstance = await this.deleteOldInstance(source, created);
    return {
      source: { instance: this.p.sourceInstance, endpoint: found.source.endpoint?.host ?? '' },
      newInstance: { instance: created.identifier, endpoint: created.endpoint?.host ?? '' },
      backup: { location: `s3://${backup.bucket}/${backup.prefix}`, files: backup.files, bytes: backup.bytes },
      verified: { tables: verified.tables.length, rows: verified.rows, sequences: verified.sequences.length, schemaMigrationRows: verified.schemaMigration?.rows ?? null },
      writers: repointed.map((w) => ({ service: w.service, taskDefinition: w.taskDefinition ?? '', desiredCount: w.desiredCount })),
      oldInstance,
    };
  }

  /** Before the writers move, a failure leaves the new instance behind on purpose: the error says so, with its name. */
  explain(err: unknown): unknown {
    if (!this.newInstanceMayExist || this.writersOnNewDb || isCancellation(err)) return err;
    return ApplicationFailure.create({
      type: failureType(err) ?? FailureType.failed,
      message: `${describeError(err)}; the new instance ${this.p.newInstance.identifier} is left for inspection (delete it when done)`,
      nonRetryable: true,
    });
  }

  // --- the steps ------------------------------------------------------------------------------------

  private async preflight(): Promise<Preflight> {
    const { rb, p } = this;
    return rb.read('preflight', `check ${p.sourceInstance}, that ${p.newInstance.identifier} does not exist, the writers, the backup bucket and every secret`, () => this.readEverything(), {
      detail: (f) => `${p.sourceInstance} (${f.source.engine} ${f.source.engineVersion}, ${f.source.instanceClass}) at ${f.source.endpoint?.host}; ` +
        `writers: ${f.writers.map((w) => `${w.service} ${w.runningCount}/${w.desiredCount}`).join(', ')}`,
    });
  }

  /** Everything the run relies on, read before anything changes; a refusal names the input field. */
  private async readEverything(): Promise<Preflight> {
    const { p } = this;
    const terraform = p.provisioning.mode === 'terraform' ? p.provisioning : undefined;
    if (terraform) await quick.terraformInit({ dir: terraform.dir, workspace: terraform.workspace });
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
      const holders = await Promise.all(p.writers.map((w) => quick.findServiceHolders({ env: this.rb.env, service: w.service, except: workflowInfo().workflowId })));
      p.writers.forEach((w, i) => refuseIfHeld(holders[i]!, `writers.${i}.service`, w.service));
    }
    refuseIf(!source.engine.startsWith('postgres'), 'sourceInstance', `${p.sourceInstance} runs ${source.engine}; this runbook moves PostgreSQL`);
    refuseIf(source.status !== 'available' || !source.endpoint, 'sourceInstance', `${p.sourceInstance} is ${source.status}, not available`);
    return { source, writers, pgDumpVersion: tools.pgDumpVersion };
  }

  private async openAccess(source: InstanceInfo): Promise<void> {
    const { rb, p } = this;
    if (!p.temporaryAccess) return rb.skip('open-access', 'no temporary access configured: the worker reaches the database directly');
    const cidr = p.temporaryAccess.cidr;
    this.sourceWasPublic = source.publiclyAccessible;
    await rb.change('open-access', `make ${p.sourceInstance} reachable from ${cidr} for the copy (public access and a security-group rule)`,
      () => long(p.instanceTimeoutMs).openTemporaryAccess({ aws: p.aws, identifier: p.sourceInstance, cidr, marker: this.marker, deadline: this.deadline(p.instanceTimeoutMs) }), {
        // Registered before it runs: access opened half-way is closed too.
        undo: { summary: `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`, run: () => this.closeTemporaryAccess() },
        detail: (r) => `${r.madePublic ? 'made public' : 'was already public'}; ${r.ruleAdded ? 'added' : 'found'} the rule for ${cidr}`,
        dryResult: { madePublic: true, ruleAdded: true },
      });
  }

  private async closeAccess(): Promise<void> {
    const { rb, p } = this;
    if (!p.temporaryAccess) return rb.skip('close-access', 'no temporary access to close');
    await rb.change('close-access', `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`, () => this.closeTemporaryAccess(), {
      detail: (r) => `removed ${r.rulesRemoved} rule(s)${r.madePrivate.length ? `; made ${r.madePrivate.join(', ')} private again` : ''}`,
      dryResult: { rulesRemoved: 0, madePrivate: [] },
    });
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
    const inspected = await rb.read('inspect-source', `connect to ${p.sourceInstance}/${p.database} as ${p.credentials.app.username}: size, tables, schema migrations`,
      () => quick.inspectDatabase({ login: this.appLogin(source), sources: this.sources }), {
        detail: (i) => `PostgreSQL ${i.serverVersion}, ${formatBytes(i.sizeBytes)}, ${i.tables.length} tables (~${i.tables.reduce((s, t) => s + t.estimatedRows, 0)} rows), ` +
          `${i.sequences} sequences, ${i.schemaMigration ? `${i.schemaMigration.rows} schema migrations` : 'no schema_migration table'}`,
      });
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

  private async stopWriters(writers: WriterState[]): Promise<void> {
    const { rb, p } = this;
    const stopped = writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: 0 }));
    const asTheyWere = writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: w.desiredCount, taskDefinition: w.taskDefinition }));
    await rb.change('stop-writers', `stop ${this.writerNames(writers)}: desired count to 0, then wait until no task of theirs runs`, () => this.setAndWait(stopped), {
      undo: {
        summary: `start ${this.writerNames(writers)} again on ${p.sourceInstance} as they were (task definitions and desired counts ${writers.map((w) => w.desiredCount).join(', ')}), unless they already run on ${p.newInstance.identifier}`,
        run: async () => (this.writersOnNewDb ? undefined : this.setAndWait(asTheyWere)),
      },
      detail: () => `no task of ${this.writerNames(writers)} runs`,
      dryResult: [],
    });
  }

  private async backup(source: DatabaseLocation, inspected: DatabaseInspection | undefined): Promise<BackupResult> {
    const { rb, p } = this;
    const where = `s3://${this.backupLocation.bucket}/${this.backupLocation.prefix}`;
    return rb.change('backup', `pg_dump ${p.sourceInstance}/${p.database}${inspected ? ` (${formatBytes(inspected.sizeBytes)})` : ''} with ${p.parallelJobs} jobs to ${where}`,
      () => long(p.copyTimeoutMs).backupDatabase({ source: this.appLogin(source), sources: this.sources, storage: this.backupLocation, jobs: p.parallelJobs }), {
        detail: (b) => `${b.files} files, ${formatBytes(b.bytes)} in ${where}${b.reused ? ' (found complete from an earlier attempt)' : ''}`,
        dryResult: { bucket: this.backupLocation.bucket, prefix: this.backupLocation.prefix, files: 0, bytes: 0, pgDumpVersion: '' },
      });
  }

  private async detachOldState(): Promise<void> {
    const { rb, p } = this;
    const tf = p.provisioning;
    if (tf.mode !== 'terraform') return rb.skip('detach-old-state', 'the new instance is made with the RDS API: no Terraform state to change');
    // No undo: once Terraform has made the new instance at this address, putting the old one back would fight it.
    await rb.change('detach-old-state', `terraform state rm ${tf.instanceAddress} (workspace ${tf.workspace}), so Terraform cannot delete ${p.sourceInstance}`,
      () => quick.terraformStateRm({ dir: tf.dir, workspace: tf.workspace, address: tf.instanceAddress }), {
        detail: (r) => `${tf.instanceAddress} ${r.removed ? 'removed from' : 'was already out of'} state; ${p.sourceInstance} itself untouched (re-import it with \`terraform import\` if the migration is abandoned)`,
      });
  }

  private async createNewInstance(source: InstanceInfo): Promise<InstanceInfo> {
    const { rb, p } = this;
    const id = p.newInstance.identifier;
    const dryResult: InstanceInfo = { ...source, identifier: id, endpoint: { host: `(endpoint of ${id})`, port: source.endpoint?.port ?? 5432 }, publiclyAccessible: false, tags: {} };
    const how = p.provisioning.mode === 'terraform'
      ? `terraform plan -target ${p.provisioning.instanceAddress} -target ${p.provisioning.passwordAddress} and apply`
      : `the RDS API (${p.newInstance.instanceClass ?? source.instanceClass}, ${source.engine} ${p.newInstance.engineVersion ?? source.engineVersion})`;
    return rb.change('create-new-instance', `create ${id} with ${how}, wait until available${p.temporaryAccess ? ', open it to the copy' : ''}`, async () => {
      this.newInstanceMayExist = true;
      const created = await this.provision(source);
      this.newWasPublic = created.publiclyAccessible;
      if (p.temporaryAccess) {
        await long(p.instanceTimeoutMs).openTemporaryAccess({ aws: p.aws, identifier: id, cidr: p.temporaryAccess.cidr, marker: this.marker, deadline: this.deadline(p.instanceTimeoutMs) });
      }
      return created;
    }, { detail: (c) => `${id} available at ${c.endpoint?.host}:${c.endpoint?.port} (kept if the run rolls back)`, dryResult });
  }

  private async provision(source: InstanceInfo): Promise<InstanceInfo> {
    const { p } = this;
    const waits = long(p.instanceTimeoutMs);
    const deadline = this.deadline(p.instanceTimeoutMs);
    const emulate: MappedDatabaseSpec | undefined = p.endpointMap
      ? { dbName: p.database, admin: p.credentials.admin, adminField: 'credentials.admin', sources: this.sources, tls: p.tls, endpointMap: p.endpointMap }
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
    const where = { dir: tf.dir, workspace: tf.workspace };
    const planFile = `db-migration-${this.runTag}.tfplan`;
    const plan = await long(p.instanceTimeoutMs).terraformPlan({ ...where, targets: [tf.instanceAddress, tf.passwordAddress], planFile });
    refuseUnexpectedDestroys(plan, [tf.instanceAddress, tf.passwordAddress], planFile);
    await long(p.instanceTimeoutMs).terraformApply({ ...where, planFile, sha256: plan.sha256 });
    await long(p.instanceTimeoutMs).terraformDiscardPlan({ planFile }); // it holds the generated password
    return waits.waitForDbInstance({ aws: p.aws, identifier: p.newInstance.identifier, deadline, ...(emulate ? { emulate } : {}) });
  }

  private async restore(target: DatabaseLocation, backup: BackupResult, inspected: DatabaseInspection | undefined): Promise<RestoreResult> {
    const { rb, p } = this;
    return rb.change('restore', `pg_restore -j ${p.parallelJobs} into ${target.instance}/${p.database} as ${this.newApp.username}, into a freshly created database`,
      () => long(p.copyTimeoutMs).restoreBackup({
        storage: this.backupLocation,
        admin: this.adminLogin(target),
        app: this.newAppLogin(target),
        sources: this.sources,
        jobs: p.parallelJobs,
        encoding: inspected?.encoding ?? 'UTF8',
      }), {
      detail: (r) => `${formatBytes(backup.bytes)} downloaded in ${seconds(r.downloadMs)}, restored in ${seconds(r.restoreMs)}`,
      dryResult: { bytes: 0, downloadMs: 0, restoreMs: 0 },
    });
  }

  private async verify(source: DatabaseLocation, target: DatabaseLocation): Promise<VerifyReport> {
    const { rb, p } = this;
    // A change only in the sense that it needs the copy: a dry run has none to check.
    return rb.change('verify', `compare ${target.instance} with ${p.sourceInstance}: every table's row count and content checksum, sequences, schema migrations`,
      () => long(p.copyTimeoutMs).verifyCopy({ source: this.appLogin(source), target: this.newAppLogin(target), sources: this.sources }), {
        detail: (v) => `${v.tables.length} tables and ${v.rows} rows equal; ${v.sequences.length} sequences at the same values; ` +
          `${v.schemaMigration ? `${v.schemaMigration.rows} schema migrations` : 'no schema_migration table'}`,
        dryResult: { tables: [], rows: 0, sequences: [], schemaMigration: null },
      });
  }

  private async createAppRole(target: DatabaseLocation): Promise<void> {
    const { rb, p } = this;
    await rb.change('create-app-role', `log in to ${target.instance} as ${p.credentials.admin.username} and create the role ${this.newApp.username}`,
      () => quick.ensureAppRole({ admin: this.adminLogin(target), app: this.newApp, appField: this.newAppField, sources: this.sources }), {
        detail: (r) => `${r.created ? 'created' : 'updated'} role ${this.newApp.username}${r.grantedToAdmin ? `, granted to ${p.credentials.admin.username} so it can hand over ownership` : ''}`,
        dryResult: { created: true, grantedToAdmin: false },
      });
  }

  private cutoverPrompt(created: InstanceInfo, verified: VerifyReport, writers: WriterState[]): string {
    const copy = this.rb.dryRun ? 'a verified copy' : `an exact copy (${verified.tables.length} tables, ${verified.rows} rows, ${verified.sequences.length} sequences)`;
    return `${created.identifier} holds ${copy}. Point ${this.writerNames(writers)} at ${created.endpoint!.host} and start them?`;
  }

  private async repointWriters(writers: WriterState[], created: InstanceInfo): Promise<WriterTarget[]> {
    const { rb, p } = this;
    return rb.change('repoint-writers', `register task definitions of ${this.writerNames(writers)} with ${writers[0]?.hostVariable ?? 'the host'}=${created.endpoint!.host}`,
      () => quick.repointWriters({ aws: p.aws, writers, endpoint: created.endpoint! }), {
        detail: (r) => r.map((w) => `${w.service} -> ${shortArn(w.taskDefinition!)}`).join(', '),
        dryResult: writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: w.desiredCount, taskDefinition: '(new revision)' })),
      });
  }

  private async restoreWriters(repointed: WriterTarget[], created: InstanceInfo): Promise<void> {
    // The point of no return: from here a failure must not move the writers back (they may have written already).
    this.writersOnNewDb = true;
    await this.rb.change('restore-writers', `start ${this.writerNames(repointed)} on ${created.identifier}: restore desired counts ${repointed.map((w) => w.desiredCount).join(', ')}`,
      () => this.setAndWait(repointed), { detail: (r) => r.map((w) => `${w.service}: ${w.running} running`).join(', '), dryResult: [] });
  }

  /** "Once we are satisfied": deletes the old instance after approval; a rejection keeps it, and the run ends there. */
  private async deleteOldInstance(source: DatabaseLocation, created: InstanceInfo): Promise<DbMigrationResult['oldInstance']> {
    const { rb, p } = this;
    const kept = await this.approvedOrReason('delete-old', `The writers run on ${created.identifier}. Delete ${p.sourceInstance} (a final snapshot ${this.finalSnapshotId} is taken first)?`);
    if (kept) {
      rb.skip('delete-old-instance', `${p.sourceInstance} kept: ${kept}`);
      return { deleted: false, reason: kept };
    }
    const deleted = await rb.change('delete-old-instance', `delete ${p.sourceInstance} after a final snapshot ${this.finalSnapshotId}`,
      () => long(p.instanceTimeoutMs).deleteDbInstance({
        aws: p.aws,
        identifier: p.sourceInstance,
        finalSnapshotId: this.finalSnapshotId,
        ...(p.endpointMap ? { mapped: { location: source, admin: p.credentials.admin, adminField: 'credentials.admin', sources: this.sources } } : {}),
        deadline: this.deadline(p.instanceTimeoutMs),
      }), { detail: (d) => `deleted ${p.sourceInstance}; final snapshot ${d.finalSnapshotId}`, dryResult: { finalSnapshotId: this.finalSnapshotId, alreadyDeleted: false } });
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
      ...(credentials.newApp ? [{ field: 'credentials.newApp', credentials: credentials.newApp, to: to(newInstance.identifier), madeByRun }] : []),
    ];
  }

  private locate(instance: InstanceInfo): DatabaseLocation {
    const { p } = this;
    return { instance: instance.identifier, endpoint: instance.endpoint!, database: p.database, tls: p.tls, ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}) };
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
    throw ApplicationFailure.create({ type: 'PlanRefused', message: `the plan ${planFile} was refused, nothing applied: ${problems.join('; ')}`, nonRetryable: true });
  }
}

function major(version: string): number {
  return Number.parseInt(version, 10);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function shortArn(arn: string): string {
  return arn.split('/').at(-1) ?? arn;
}
