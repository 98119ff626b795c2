/**
 * The application's `schema_migration` table: which migrations the database
 * has run. Read before and after a migration (ecs-migration), and around a
 * deploy so a later rollback can tell whether the schema moved since.
 */
import type { AwsConnection } from '../config.js';
import { resolveLogin, withPg, type Login } from './pg-connect.js';
import type { RunbooksConfig } from '../config.js';
import { clientFactory, type AwsClientFactory } from './aws.js';
import { createCredentialResolver, type CredentialResolver } from './secrets.js';

export interface SchemaMigrationsDb {
  aws: AwsConnection;
  /** Where the table is and who logs in; the password is a secret reference. */
  login: Login;
}

export interface SchemaMigrations {
  count: number;
  /** The most recently applied version, or null on an empty table. */
  newest: string | null;
  /** Every version, oldest first. */
  versions: string[];
}

export const SCHEMA_MIGRATION_TABLE = 'schema_migration';

export function createSchemaMigrationActivities(
  deps: { credentials?: CredentialResolver; environments?: RunbooksConfig; aws?: AwsClientFactory } = {},
) {
  const credentials = deps.credentials ?? createCredentialResolver(deps);
  const clients = clientFactory(deps);

  return {
    async readSchemaMigrations({ db }: { db: SchemaMigrationsDb }): Promise<SchemaMigrations> {
      const connection = await resolveLogin(db.login, { aws: db.aws }, credentials, clients);
      return withPg(
        connection,
        `read ${SCHEMA_MIGRATION_TABLE}`,
        async (client) => {
          const { rows } = await client.query<{ version: string }>(
            `SELECT version FROM ${SCHEMA_MIGRATION_TABLE} ORDER BY applied_at, version`,
          );
          const versions = rows.map((r) => r.version);
          return { count: versions.length, newest: versions.at(-1) ?? null, versions };
        },
        { credentials: `${db.login.field}.credentials`, database: `${db.login.field}.location` },
      );
    },
  };
}

export type SchemaMigrationActivities = ReturnType<typeof createSchemaMigrationActivities>;
