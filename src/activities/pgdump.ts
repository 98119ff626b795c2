/**
 * Backup and restore with pg_dump and pg_restore. The dump is in directory
 * format (one file per table, dumped and restored by N jobs in parallel) and
 * lives in S3 (see backup-store.ts), so any worker can restore it. Both
 * activities are safe to repeat: a backup whose manifest exists is not made
 * again, and a restore always starts from an empty database.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AwsClientFactory } from './aws.js';
import { clientFactory } from './aws.js';
import { heartbeatWhile } from './heartbeat.js';
import {
  checkBucket,
  downloadFile,
  readManifest,
  uploadFile,
  writeManifest,
  type BackupLocation,
  type BackupManifest,
} from './backup-store.js';
import { checkLoginBeforeTool, pgChildEnv, physicalAddress, resolveLogin, type Login } from './pg-connect.js';
import { pgToolFinder, runTool, toolVersion } from './pg-tools.js';
import { recreateDatabase } from './postgres.js';
import type { CredentialResolver, SecretSources } from './secrets.js';

export type { BackupLocation } from './backup-store.js';

export interface PgDumpDeps {
  aws?: AwsClientFactory;
  /** Folder holding pg_dump and pg_restore; see `pgToolFinder` for the fallbacks. */
  pgBinDir?: string;
  /** Scratch space for dumps on their way to and from S3. Default: the OS temp folder. */
  workDir?: string;
}

export interface BackupResult {
  bucket: string;
  prefix: string;
  files: number;
  bytes: number;
  pgDumpVersion: string;
  /** Set when the backup was found complete, made by an attempt whose result was lost. */
  reused?: boolean;
}

export interface RestoreResult {
  bytes: number;
  downloadMs: number;
  restoreMs: number;
}

/** What a backup attempt heartbeats: once the dump is complete, a retry on the same host uploads only what is missing. */
interface BackupProgress {
  phase: 'dump' | 'upload';
  dir?: string;
  uploaded?: string[];
}

/** Written beside the dump when pg_dump has finished, so a resumed attempt knows the folder is whole. */
const DUMP_COMPLETE = '.dump-complete';
/**
 * gzip level 1: most of the size saving for a fraction of the default level's
 * CPU (uncompressed, the upload costs more than the compression saves).
 * pg_dump runs with --no-sync: the folder is scratch, durable once in S3.
 */
const COMPRESSION = '1';
/**
 * Each of pg_restore's many transactions need not wait for its commit to be
 * flushed: a restore cut short is redone from an empty database anyway.
 */
const RESTORE_SESSION_OPTIONS = '-c synchronous_commit=off';

export function createPgDumpActivities(deps: PgDumpDeps, credentials: CredentialResolver) {
  const clients = clientFactory(deps);
  const tool = pgToolFinder(deps.pgBinDir);
  const scratch = deps.workDir ?? join(tmpdir(), 'runbook-db-migration');

  return {
    /** Preflight: the programs run here, and the bucket exists. */
    async checkBackupPrerequisites(args: { storage: BackupLocation }): Promise<{ pgDumpVersion: string; pgRestoreVersion: string }> {
      await checkBucket(clients(args.storage.aws).s3, args.storage.bucket);
      const [pgDumpVersion, pgRestoreVersion] = await Promise.all([
        toolVersion(await tool('pg_dump')),
        toolVersion(await tool('pg_restore')),
      ]);
      return { pgDumpVersion, pgRestoreVersion };
    },

    /** `pg_dump -Fd -j N` as `source`, then every file to S3, then the manifest. */
    async backupDatabase(args: { source: Login; sources: SecretSources; storage: BackupLocation; jobs: number }): Promise<BackupResult> {
      const s3 = clients(args.storage.aws).s3;
      const done = await readManifest(s3, args.storage);
      if (done) return { ...summarize(args.storage, done), reused: true };

      const resumed = Context.current().info.heartbeatDetails as BackupProgress | undefined;
      const attempt = await attemptFolder(scratch, resumed?.phase === 'upload' ? resumed.dir : undefined);
      const dumpDir = join(attempt, 'dump');
      const dumped = await isComplete(dumpDir);
      let progress: BackupProgress = dumped && resumed?.dir === attempt ? resumed : { phase: 'dump' };
      const pgDump = await tool('pg_dump');
      const pgDumpVersion = await toolVersion(pgDump);

      return heartbeatWhile(
        async () => {
          if (!dumped) {
            const connection = await resolveLogin(args.source, args.sources, credentials, clients);
            const libpq = majorVersion(pgDumpVersion);
            await checkLoginBeforeTool(connection, libpq, 'pg_dump');
            await rm(dumpDir, { recursive: true, force: true });
            await runTool(
              pgDump,
              [
                '--format=directory',
                `--jobs=${args.jobs}`,
                `--compress=${COMPRESSION}`,
                '--no-sync',
                '--no-password',
                `--dbname=${connection.database}`,
                `--file=${dumpDir}`,
              ],
              pgChildEnv(connection, libpq),
              `pg_dump of ${args.source.location.instance}`,
              () => progress,
            );
            await writeFile(join(dumpDir, DUMP_COMPLETE), '');
            progress = { phase: 'upload', dir: attempt, uploaded: [] };
          }
          const files: { name: string; bytes: number }[] = [];
          for (const name of (await readdir(dumpDir)).filter((n) => n !== DUMP_COMPLETE).sort()) {
            const already = progress.uploaded?.includes(name);
            files.push({
              name,
              bytes: already ? (await stat(join(dumpDir, name))).size : await uploadFile(s3, args.storage, dumpDir, name),
            });
            if (!already) progress = { phase: 'upload', dir: attempt, uploaded: [...(progress.uploaded ?? []), name] };
          }
          const manifest: BackupManifest = {
            format: 'pg_dump-directory',
            instance: args.source.location.instance,
            database: args.source.location.database,
            pgDumpVersion,
            createdAt: new Date().toISOString(),
            files,
          };
          await writeManifest(s3, args.storage, manifest);
          await rm(dirname(attempt), { recursive: true, force: true });
          return summarize(args.storage, manifest);
        },
        () => progress,
      );
    },

    /**
     * Restores the backup into `app.location`'s database: downloads it, drops
     * and re-creates the database empty and owned by the app role (so a
     * repeated restore starts clean, and a stale pg_restore is disconnected),
     * then `pg_restore -j N --no-owner --role=<app>` logged in as the app role.
     */
    async restoreBackup(args: {
      storage: BackupLocation;
      admin: Login;
      app: Login;
      sources: SecretSources;
      jobs: number;
      encoding: string;
    }): Promise<RestoreResult> {
      const s3 = clients(args.storage.aws).s3;
      const manifest = await readManifest(s3, args.storage);
      if (!manifest) {
        throw ApplicationFailure.create({
          type: 'BackupMissing',
          message: `no complete backup at s3://${args.storage.bucket}/${args.storage.prefix}`,
          nonRetryable: true,
        });
      }
      const attempt = await attemptFolder(scratch);
      const dumpDir = join(attempt, 'dump');
      await mkdir(dumpDir, { recursive: true });
      let phase = 'download';

      return heartbeatWhile(
        async () => {
          const downloadStarted = Date.now();
          for (const file of manifest.files) await downloadFile(s3, args.storage, dumpDir, file);
          const downloadMs = Date.now() - downloadStarted;

          phase = 'restore';
          const [admin, app] = await Promise.all([
            resolveLogin(args.admin, args.sources, credentials, clients),
            resolveLogin(args.app, args.sources, credentials, clients),
          ]);
          const database = physicalAddress(args.app.location).database;
          const restoreStarted = Date.now();
          await recreateDatabase(admin, database, app.user, args.encoding);
          const pgRestore = await tool('pg_restore');
          const libpq = majorVersion(await toolVersion(pgRestore));
          await checkLoginBeforeTool(app, libpq, 'pg_restore');
          await runTool(
            pgRestore,
            [
              '--format=directory',
              `--jobs=${args.jobs}`,
              '--no-owner',
              `--role=${app.user}`,
              '--exit-on-error',
              '--no-password',
              `--dbname=${database}`,
              dumpDir,
            ],
            { ...pgChildEnv(app, libpq), PGOPTIONS: RESTORE_SESSION_OPTIONS },
            `pg_restore into ${args.app.location.instance}`,
            () => ({ phase }),
          );
          const restoreMs = Date.now() - restoreStarted;
          await rm(dirname(attempt), { recursive: true, force: true });
          return { bytes: manifest.files.reduce((sum, f) => sum + f.bytes, 0), downloadMs, restoreMs };
        },
        () => ({ phase }),
      );
    },
  };
}

export type PgDumpActivities = ReturnType<typeof createPgDumpActivities>;

/** 15 from "15.8": the libpq the program is linked with is at least this new (Debian ships them together). */
function majorVersion(version: string): number {
  return Number.parseInt(version, 10) || 0;
}

function summarize(storage: BackupLocation, manifest: BackupManifest): BackupResult {
  return {
    bucket: storage.bucket,
    prefix: storage.prefix,
    files: manifest.files.length,
    bytes: manifest.files.reduce((sum, f) => sum + f.bytes, 0),
    pgDumpVersion: manifest.pgDumpVersion,
  };
}

/**
 * This attempt's scratch folder, one per activity of a run. Folders left by
 * earlier attempts of the same activity on this host (a killed worker leaves
 * them, and the tools it started may still write there) are removed, except
 * `keep`, a complete dump the attempt resumes uploading.
 */
async function attemptFolder(scratch: string, keep?: string): Promise<string> {
  const { info } = Context.current();
  const run = info.workflowExecution ? `${info.workflowExecution.workflowId}/${info.workflowExecution.runId}` : 'standalone';
  const activity = createHash('sha256').update(`${run}/${info.activityId}`).digest('hex').slice(0, 16);
  const parent = join(scratch, activity);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const mine = keep && keep.startsWith(parent) ? keep : join(parent, `attempt-${info.attempt}`);
  for (const name of await readdir(parent)) {
    const path = join(parent, name);
    if (path !== mine) await rm(path, { recursive: true, force: true });
  }
  await mkdir(mine, { recursive: true, mode: 0o700 });
  return mine;
}

async function isComplete(dumpDir: string): Promise<boolean> {
  return stat(join(dumpDir, DUMP_COMPLETE)).then(
    () => true,
    () => false,
  );
}
