/**
 * The activities `db-migration` registers, built around one credential
 * resolver so every module sends credentials only where the worker's config allows. Each module wraps one
 * system: RDS, PostgreSQL, pg_dump/pg_restore with S3, the ECS writers.
 */
import type { AwsClientFactory } from './aws.js';
import type { ExtraAwsClientFactory } from './aws-extra-clients.js';
import { createRecheckActivities } from './db-recheck.js';
import { createLogicalReplicationActivities } from './logical-replication.js';
import { createPgDumpActivities } from './pgdump.js';
import { createPostgresActivities } from './postgres.js';
import { createRdsActivities } from './rds.js';
import type { RunbooksConfig } from '../config.js';
import { createCredentialResolver, createSecretActivities, type TerraformOutputReader } from './secrets.js';
import { createWriterActivities } from './writers.js';

export interface DbMigrationDeps {
  aws?: AwsClientFactory;
  awsExtra?: ExtraAwsClientFactory;
  /** Folder of pg_dump and pg_restore; unset: PG_BIN, the newest /usr/lib/postgresql/<v>/bin, or PATH. */
  pgBinDir?: string;
  /** Scratch folder for dumps; unset: the OS temp folder. */
  workDir?: string;
  terraformOutput?: TerraformOutputReader;
  /** The worker's environments file: which credential may go where, and how connections are secured. */
  environments?: RunbooksConfig;
}

export function createDbMigrationActivities(deps: DbMigrationDeps = {}) {
  const credentials = createCredentialResolver(deps);
  return {
    ...createSecretActivities(credentials),
    ...createRdsActivities(deps, credentials),
    ...createPostgresActivities(credentials),
    ...createRecheckActivities(credentials),
    ...createPgDumpActivities(deps, credentials),
    ...createLogicalReplicationActivities(deps, credentials),
    ...createWriterActivities(deps),
  };
}

export type DbMigrationActivities = ReturnType<typeof createDbMigrationActivities>;
