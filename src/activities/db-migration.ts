/**
 * The activities `db-migration` registers, built around one secret resolver
 * so every module resolves references the same way. Each module wraps one
 * system: RDS, PostgreSQL, pg_dump/pg_restore with S3, the ECS writers.
 */
import type { AwsClientFactory } from './aws.js';
import type { ExtraAwsClientFactory } from './aws-extra-clients.js';
import { createRecheckActivities } from './db-recheck.js';
import { createLogicalReplicationActivities } from './logical-replication.js';
import { createPgDumpActivities } from './pgdump.js';
import { createPostgresActivities } from './postgres.js';
import { createRdsActivities } from './rds.js';
import { createSecretActivities, createSecretResolver, type TerraformOutputReader } from './secrets.js';
import { createWriterActivities } from './writers.js';

export interface DbMigrationDeps {
  aws?: AwsClientFactory;
  awsExtra?: ExtraAwsClientFactory;
  /** Folder of pg_dump and pg_restore; unset: PG_BIN, the newest /usr/lib/postgresql/<v>/bin, or PATH. */
  pgBinDir?: string;
  /** Scratch folder for dumps; unset: the OS temp folder. */
  workDir?: string;
  terraformOutput?: TerraformOutputReader;
}

export function createDbMigrationActivities(deps: DbMigrationDeps = {}) {
  const resolveSecret = createSecretResolver(deps);
  return {
    ...createSecretActivities(resolveSecret),
    ...createRdsActivities(deps, resolveSecret),
    ...createPostgresActivities(resolveSecret),
    ...createRecheckActivities(resolveSecret),
    ...createPgDumpActivities(deps, resolveSecret),
    ...createLogicalReplicationActivities(deps, resolveSecret),
    ...createWriterActivities(deps),
  };
}

export type DbMigrationActivities = ReturnType<typeof createDbMigrationActivities>;
