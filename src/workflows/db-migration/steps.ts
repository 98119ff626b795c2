/** db-migration's steps, shared by both modes and dump mode's own; each reads and writes only the run's context. */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import { FailureType } from '../../messages.js';
import type { BackupResult, RestoreResult } from '../../activities/pgdump.js';
import type { DatabaseLocation } from '../../activities/pg-connect.js';
import type { DatabaseInspection, VerifyReport } from '../../activities/postgres.js';
import type { InstanceInfo, MappedDatabaseSpec } from '../../activities/rds.js';
import type { WriterState, WriterTarget } from '../../activities/writers.js';
import { protectionGaps } from '../../db-protection.js';
import { planProblems, type PlanSummary } from '../../terraform-plan.js';
import { describeError, refuseIf, refuseIfHeld } from '../engine/index.js';
import { formatBytes, shortArn } from '../../format.js';
import type { DbMigrationResult } from '../db-migration.js';
import { deployTransition } from './deploy-pipeline.js';
import {
  adminLogin,
  appLogin,
  credentialUses,
  deadline,
  long,
  locate,
  major,
  newAppLogin,
  quick,
  replicationLogin,
  seconds,
  setAndWait,
  terraformDir,
  writerNames,
  type Migration,
  type ModeChoice,
  type Preflight,
} from './context.js';

export async function preflight(m: Migration): Promise<Preflight> {
  const { rb, p } = m;
  return rb.read(
    'preflight',
    `check ${p.sourceInstance}, that ${p.newInstance.identifier} does not exist, the writers, the backup bucket and every secret`,
    () => readEverything(m),
    {
      detail: (f) =>
        `${p.sourceInstance} (${f.source.engine} ${f.source.engineVersion}, ${f.source.instanceClass}) at ${f.source.endpoint?.host}; ` +
        `writers: ${f.writers.map((w) => `${w.service} ${w.runningCount}/${w.desiredCount}`).join(', ')}` +
        `; ${f.mode ? `mode ${f.mode.mode}: ${f.mode.why}` : 'mode decided once the database is reachable (inspect-source)'}`,
    },
  );
}

/** Everything the run relies on, read before anything changes; a refusal names the input field. */
async function readEverything(m: Migration): Promise<Preflight> {
  const { p } = m;
  const terraform = p.provisioning.mode === 'terraform' ? p.provisioning : undefined;
  if (terraform) await quick.terraformInit(terraformDir(terraform));
  const [source, , writers, tools] = await Promise.all([
    quick.describeDbInstance({ aws: p.aws, identifier: p.sourceInstance, field: 'sourceInstance' }),
    quick.checkDbInstanceAbsent({ aws: p.aws, identifier: p.newInstance.identifier, field: 'newInstance.identifier' }),
    quick.inspectWriters({ aws: p.aws, writers: p.writers }),
    quick.checkBackupPrerequisites({ storage: m.backupLocation }),
    quick.checkSecretRefs({ sources: m.sources, uses: credentialUses(m) }),
  ]);
  // One runbook at a time per ECS service: a deploy or restart of a writer must not meet this run's stop (runs
  // started before the service lock did not look, and must replay as they ran).
  if (!m.rb.legacy) {
    const holders = await Promise.all(
      p.writers.map((w) => quick.findServiceHolders({ env: m.rb.env, service: w.service, except: workflowInfo().workflowId })),
    );
    p.writers.forEach((w, i) => refuseIfHeld(holders[i]!, `writers.${i}.service`, w.service));
  }
  await refuseUnmanagedTerraform(m);
  if (m.pausesDeploys && p.deployPipeline) await quick.checkStageTransition(deployTransition(m, p.deployPipeline));
  refuseIf(
    !source.engine.startsWith('postgres'),
    'sourceInstance',
    `${p.sourceInstance} runs ${source.engine}; this runbook moves PostgreSQL`,
  );
  refuseIf(source.status !== 'available' || !source.endpoint, 'sourceInstance', `${p.sourceInstance} is ${source.status}, not available`);
  // An emulated instance's database is on the local server: reachable before any access is opened.
  const reachable = !p.temporaryAccess || Boolean(p.endpointMap);
  const mode = reachable ? await chooseMode(m, source, locate(m, source)) : undefined;
  return { source, writers, pgDumpVersion: tools.pgDumpVersion, ...(mode ? { mode } : {}) };
}

/**
 * Online where the source can replicate, unless the input asks for dump; an
 * explicit `mode: online` the source cannot serve is refused, naming every
 * missing piece (tables without a key, wal_level, …). Read-only.
 */
async function chooseMode(m: Migration, source: InstanceInfo, location: DatabaseLocation): Promise<ModeChoice> {
  const { p } = m;
  if (!m.onlineKnown) return { mode: 'dump', why: 'started before online mode existed' };
  if (p.mode === 'dump') return { mode: 'dump', why: 'asked for (mode: dump)' };
  const ready = await quick.checkLogicalReplication({
    app: appLogin(m, location),
    replication: replicationLogin(m, location),
    sources: m.sources,
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
export async function chooseModeOnceReachable(m: Migration, instance: InstanceInfo, location: DatabaseLocation): Promise<ModeChoice> {
  if (m.rb.dryRun) return { mode: m.p.mode ?? 'dump', why: 'a dry run cannot reach the database to check replication' };
  return chooseMode(m, instance, location);
}

/**
 * Seed 002 takes the database out of Terraform's state before a new one is
 * made: made with the RDS API instead, a source Terraform still manages
 * would be replaced by an empty database at its address on the next apply.
 * In Terraform mode the source must be at `instanceAddress`, the address
 * the run removes from state.
 */
async function refuseUnmanagedTerraform(m: Migration): Promise<void> {
  const { p } = m;
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
      `${p.sourceInstance} is managed by Terraform (${addresses.join(', ')} in ${prov.terraformState?.dirName ?? state.dir}, workspace ${state.workspace}); made with the RDS API, the next terraform apply would recreate an empty database at that address: use provisioning.mode terraform`,
    );
  } else {
    refuseIf(
      addresses.length > 0 && !addresses.includes(prov.instanceAddress),
      'provisioning.instanceAddress',
      `${p.sourceInstance} is ${addresses.join(', ')} in the ${prov.workspace} state, not ${prov.instanceAddress}: removing ${prov.instanceAddress} from state would not protect it`,
    );
  }
}

export async function openAccess(m: Migration, source: InstanceInfo): Promise<void> {
  const { rb, p } = m;
  if (!p.temporaryAccess) return rb.skip('open-access', 'no temporary access configured: the worker reaches the database directly');
  const cidr = p.temporaryAccess.cidr;
  m.sourceWasPublic = source.publiclyAccessible;
  await rb.change(
    'open-access',
    `make ${p.sourceInstance} reachable from ${cidr} for the copy (public access and a security-group rule)`,
    () =>
      long(p.instanceTimeoutMs).openTemporaryAccess({
        aws: p.aws,
        identifier: p.sourceInstance,
        cidr,
        marker: m.marker,
        deadline: deadline(p.instanceTimeoutMs),
      }),
    {
      // Registered before it runs: access opened half-way is closed too.
      undo: {
        summary: `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`,
        run: () => closeTemporaryAccess(m),
      },
      detail: (r) => `${r.madePublic ? 'made public' : 'was already public'}; ${r.ruleAdded ? 'added' : 'found'} the rule for ${cidr}`,
      dryResult: { madePublic: true, ruleAdded: true },
    },
  );
}

export async function closeAccess(m: Migration): Promise<void> {
  const { rb, p } = m;
  if (!p.temporaryAccess) return rb.skip('close-access', 'no temporary access to close');
  await rb.change(
    'close-access',
    `close the temporary access to ${p.sourceInstance} and ${p.newInstance.identifier}`,
    () => closeTemporaryAccess(m),
    {
      detail: (r) => `removed ${r.rulesRemoved} rule(s)${r.madePrivate.length ? `; made ${r.madePrivate.join(', ')} private again` : ''}`,
      dryResult: { rulesRemoved: 0, madePrivate: [] },
    },
  );
}

function closeTemporaryAccess(m: Migration) {
  const { p } = m;
  return long(p.instanceTimeoutMs).closeTemporaryAccess({
    aws: p.aws,
    instances: [
      { identifier: p.sourceInstance, wasPublic: m.sourceWasPublic },
      { identifier: p.newInstance.identifier, wasPublic: m.newWasPublic },
    ],
    marker: m.marker,
    deadline: deadline(p.instanceTimeoutMs),
  });
}

export async function inspectSource(
  m: Migration,
  source: DatabaseLocation,
  pgDumpVersion: string,
): Promise<DatabaseInspection | undefined> {
  const { rb, p } = m;
  if (rb.dryRun && p.temporaryAccess) {
    rb.skip('inspect-source', `would connect to ${p.sourceInstance} once temporary access is open`);
    return undefined;
  }
  const inspected = await rb.read(
    'inspect-source',
    `connect to ${p.sourceInstance}/${p.database} as ${p.credentials.app.username}: size, tables, schema migrations`,
    () => quick.inspectDatabase({ login: appLogin(m, source), sources: m.sources }),
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

export async function stopWriters(
  m: Migration,
  writers: WriterState[],
  step: 'stop-writers' | 'window-stop-writers' = 'stop-writers',
): Promise<void> {
  const { rb, p } = m;
  const stopped = writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: 0 }));
  const asTheyWere = writers.map((w) => ({
    cluster: w.cluster,
    service: w.service,
    desiredCount: w.desiredCount,
    taskDefinition: w.taskDefinition,
  }));
  await rb.change(
    step,
    `stop ${writerNames(writers)}: desired count to 0, then wait until no task of theirs runs`,
    () => setAndWait(m, stopped),
    {
      undo: {
        summary: `start ${writerNames(writers)} again on ${p.sourceInstance} as they were (task definitions and desired counts ${writers.map((w) => w.desiredCount).join(', ')}), unless they already run on ${p.newInstance.identifier}`,
        run: async () => (m.writersOnNewDb ? undefined : setAndWait(m, asTheyWere)),
      },
      detail: () => `no task of ${writerNames(writers)} runs`,
      dryResult: [],
    },
  );
}

export async function backup(m: Migration, source: DatabaseLocation, inspected: DatabaseInspection | undefined): Promise<BackupResult> {
  const { rb, p } = m;
  const where = `s3://${m.backupLocation.bucket}/${m.backupLocation.prefix}`;
  return rb.change(
    'backup',
    `pg_dump ${p.sourceInstance}/${p.database}${inspected ? ` (${formatBytes(inspected.sizeBytes)})` : ''} with ${p.parallelJobs} jobs to ${where}`,
    () =>
      long(p.copyTimeoutMs).backupDatabase({
        source: appLogin(m, source),
        sources: m.sources,
        storage: m.backupLocation,
        jobs: p.parallelJobs,
      }),
    {
      detail: (b) => `${b.files} files, ${formatBytes(b.bytes)} in ${where}${b.reused ? ' (found complete from an earlier attempt)' : ''}`,
      dryResult: { bucket: m.backupLocation.bucket, prefix: m.backupLocation.prefix, files: 0, bytes: 0, pgDumpVersion: '' },
    },
  );
}

export async function detachOldState(m: Migration): Promise<void> {
  const { rb, p } = m;
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

export async function createNewInstance(m: Migration, source: InstanceInfo): Promise<InstanceInfo> {
  const { rb, p } = m;
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
      m.rb.keptOnFailure(`the new instance ${id} is left for inspection (delete it when done)`);
      const created = await provision(m, source);
      m.newWasPublic = created.publiclyAccessible;
      if (p.temporaryAccess) {
        await long(p.instanceTimeoutMs).openTemporaryAccess({
          aws: p.aws,
          identifier: id,
          cidr: p.temporaryAccess.cidr,
          marker: m.marker,
          deadline: deadline(p.instanceTimeoutMs),
        });
      }
      return created;
    },
    { detail: (c) => `${id} available at ${c.endpoint?.host}:${c.endpoint?.port} (kept if the run rolls back)`, dryResult },
  );
}

async function provision(m: Migration, source: InstanceInfo): Promise<InstanceInfo> {
  const { p } = m;
  const waits = long(p.instanceTimeoutMs);
  const until = deadline(p.instanceTimeoutMs);
  const emulate: MappedDatabaseSpec | undefined = p.endpointMap
    ? {
        dbName: p.database,
        admin: p.credentials.admin,
        adminField: 'credentials.admin',
        sources: m.sources,
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
      sources: m.sources,
      tls: p.tls,
      ...(p.endpointMap ? { endpointMap: p.endpointMap } : {}),
      deadline: until,
    });
  }
  const tf = p.provisioning;
  const where = terraformDir(tf);
  const planFile = `db-migration-${m.runTag}.tfplan`;
  const plan = await long(p.instanceTimeoutMs).terraformPlan({ ...where, targets: [tf.instanceAddress, tf.passwordAddress], planFile });
  refuseUnexpectedDestroys(plan, [tf.instanceAddress, tf.passwordAddress], planFile);
  await long(p.instanceTimeoutMs).terraformApply({ ...where, planFile, sha256: plan.sha256 });
  await long(p.instanceTimeoutMs).terraformDiscardPlan({ planFile }); // it holds the generated password
  return waits.waitForDbInstance({ aws: p.aws, identifier: p.newInstance.identifier, deadline: until, ...(emulate ? { emulate } : {}) });
}

export async function restore(
  m: Migration,
  target: DatabaseLocation,
  backup: BackupResult,
  inspected: DatabaseInspection | undefined,
): Promise<RestoreResult> {
  const { rb, p } = m;
  return rb.change(
    'restore',
    `pg_restore -j ${p.parallelJobs} into ${target.instance}/${p.database} as ${m.newApp.username}, into a freshly created database`,
    () =>
      long(p.copyTimeoutMs).restoreBackup({
        storage: m.backupLocation,
        admin: adminLogin(m, target),
        app: newAppLogin(m, target),
        sources: m.sources,
        jobs: p.parallelJobs,
        encoding: inspected?.encoding ?? 'UTF8',
      }),
    {
      detail: (r) => `${formatBytes(backup.bytes)} downloaded in ${seconds(r.downloadMs)}, restored in ${seconds(r.restoreMs)}`,
      dryResult: { bytes: 0, downloadMs: 0, restoreMs: 0 },
    },
  );
}

export async function verify(m: Migration, source: DatabaseLocation, target: DatabaseLocation): Promise<VerifyReport> {
  const { rb, p } = m;
  // A change only in the sense that it needs the copy: a dry run has none to check.
  return rb.change(
    'verify',
    `compare ${target.instance} with ${p.sourceInstance}: every table's row count and content checksum, sequences, schema migrations`,
    () => long(p.copyTimeoutMs).verifyCopy({ source: appLogin(m, source), target: newAppLogin(m, target), sources: m.sources }),
    {
      detail: (v) =>
        `${v.tables.length} tables and ${v.rows} rows equal; ${v.sequences.length} sequences at the same values; ` +
        `${v.schemaMigration ? `${v.schemaMigration.rows} schema migrations` : 'no schema_migration table'}`,
      dryResult: { tables: [], rows: 0, sequences: [], schemaMigration: null },
    },
  );
}

export async function createAppRole(m: Migration, target: DatabaseLocation): Promise<void> {
  const { rb, p } = m;
  await rb.change(
    'create-app-role',
    `log in to ${target.instance} as ${p.credentials.admin.username} and create the role ${m.newApp.username}`,
    () => quick.ensureAppRole({ admin: adminLogin(m, target), app: m.newApp, appField: m.newAppField, sources: m.sources }),
    {
      detail: (r) =>
        `${r.created ? 'created' : 'updated'} role ${m.newApp.username}${r.grantedToAdmin ? `, granted to ${p.credentials.admin.username} so it can hand over ownership` : ''}`,
      dryResult: { created: true, grantedToAdmin: false },
    },
  );
}

export function cutoverPrompt(
  m: Migration,
  created: InstanceInfo,
  verified: VerifyReport,
  writers: WriterState[],
  source: InstanceInfo,
): string {
  const copy = m.rb.dryRun
    ? 'a verified copy'
    : `an exact copy (${verified.tables.length} tables, ${verified.rows} rows, ${verified.sequences.length} sequences)`;
  // Issue 11.3: the approver decides knowing what the new instance does not carry over.
  const gaps = m.rb.dryRun ? [] : protectionGaps(source, created);
  const lacking = gaps.length ? ` It is LESS PROTECTED than ${source.identifier}, lacking: ${gaps.join('; ')}.` : '';
  return `${created.identifier} holds ${copy}.${lacking} Point ${writerNames(writers)} at ${created.endpoint!.host} and start them?`;
}

export async function repointWriters(m: Migration, writers: WriterState[], created: InstanceInfo): Promise<WriterTarget[]> {
  const { rb, p } = m;
  return rb.change(
    'repoint-writers',
    `register task definitions of ${writerNames(writers)} with ${writers[0]?.hostVariable ?? 'the host'}=${created.endpoint!.host}`,
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
export async function restoreWriters(
  m: Migration,
  repointed: WriterTarget[],
  created: InstanceInfo,
  stoppedAt: string,
): Promise<DbMigrationResult['writersStopped']> {
  // The point of no return: from here a failure must not move the writers back (they may have written already).
  m.writersOnNewDb = true;
  m.rb.keptOnFailure(`${m.p.sourceInstance} is kept, untouched (delete it yourself once satisfied)`);
  const stopped = () => ({ from: stoppedAt, to: new Date().toISOString(), ms: Date.now() - Date.parse(stoppedAt) });
  await m.rb.change(
    'restore-writers',
    `start ${writerNames(repointed)} on ${created.identifier}: restore desired counts ${repointed.map((w) => w.desiredCount).join(', ')}`,
    () => setAndWait(m, repointed),
    {
      detail: (r) => `${r.map((w) => `${w.service}: ${w.running} running`).join(', ')}; writers were stopped ${seconds(stopped().ms)}`,
      dryResult: [],
    },
  );
  return stopped();
}

/** "Once we are satisfied": deletes the old instance after approval; a rejection keeps it, and the run ends there. */
/** `counted`: each table's rows when the copy was verified (dump) or compared in the window (online). */
export async function deleteOldInstance(
  m: Migration,
  source: DatabaseLocation,
  created: InstanceInfo,
  sourceInfo: InstanceInfo,
  counted: { tables: Record<string, number> },
): Promise<DbMigrationResult['oldInstance']> {
  const { rb, p } = m;
  const lifted = sourceInfo.protection?.deletionProtection ? `; its deletion protection is lifted first` : '';
  const kept = await approvedOrReason(
    m,
    'delete-old',
    `The writers run on ${created.identifier}. Delete ${p.sourceInstance} (${created.identifier} is recounted against verification first; a final snapshot ${m.finalSnapshotId} is taken${lifted})?`,
  );
  if (kept) {
    rb.skip('delete-old-instance', `${p.sourceInstance} kept: ${kept}`);
    return { deleted: false, reason: kept };
  }
  const deleted = await rb.change(
    'delete-old-instance',
    `recount ${created.identifier} against verification, then delete ${p.sourceInstance} after a final snapshot ${m.finalSnapshotId}`,
    async () => {
      // Issue 11.2: the old instance is the only other copy; it goes only while the new one still holds what was verified.
      if (patched('recheck-before-delete')) {
        await quick.recheckNewDatabase({ login: newAppLogin(m, locate(m, created)), sources: m.sources, verified: counted });
      }
      rb.keptOnFailure(`${p.sourceInstance} may be partly deleted: check it and its final snapshot ${m.finalSnapshotId}`);
      return long(p.instanceTimeoutMs).deleteDbInstance({
        aws: p.aws,
        identifier: p.sourceInstance,
        finalSnapshotId: m.finalSnapshotId,
        ...(p.endpointMap
          ? { mapped: { location: source, admin: p.credentials.admin, adminField: 'credentials.admin', sources: m.sources } }
          : {}),
        deadline: deadline(p.instanceTimeoutMs),
      });
    },
    {
      detail: (d) => `deleted ${p.sourceInstance}; final snapshot ${d.finalSnapshotId}`,
      dryResult: { finalSnapshotId: m.finalSnapshotId, alreadyDeleted: false },
    },
  );
  return { deleted: true, finalSnapshot: deleted.finalSnapshotId };
}

/** Resolves when approved; returns why not when rejected or timed out (the old instance is then kept, and the run ends). */
async function approvedOrReason(m: Migration, checkpoint: 'delete-old', prompt: string): Promise<string | undefined> {
  try {
    await m.rb.checkpoint(checkpoint, prompt);
    return undefined;
  } catch (err) {
    // After the cutover there is nothing to roll back: keeping the old instance is the safe stop.
    if (err instanceof ApplicationFailure && err.type === FailureType.rejected) return describeError(err);
    throw err;
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

export function verifiedCounts(verified: VerifyReport): { tables: Record<string, number> } {
  return { tables: Object.fromEntries(verified.tables.map((t) => [t.table, t.rows])) };
}
