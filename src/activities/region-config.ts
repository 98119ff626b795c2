/**
 * The `region_config` table (id, s3_uri, version) the application reads its
 * regions from. Every change is conditional on the value read in preflight,
 * so a retry after a lost result finds its own change done instead of doing it twice.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { AwsConnection } from '../config.js';
import { resolveLogin, withPg, type Login } from './pg-connect.js';
import type { RunbooksConfig } from '../config.js';
import { clientFactory, type AwsClientFactory } from './aws.js';
import { createCredentialResolver, type CredentialResolver } from './secrets.js';

export interface RegionConfigDb {
  aws: AwsConnection;
  /** Where region_config is and who logs in, by a credential's logical name. */
  login: Login;
}

export interface RegionRow {
  id: string;
  s3Uri: string;
  version: number;
}

export interface UriChange {
  id: string;
  from: string;
  to: string;
}

export interface VersionBump {
  id: string;
  /** The version read in preflight; the bump sets from + 1. */
  from: number;
}

export function createRegionConfigActivities(
  deps: { credentials?: CredentialResolver; environments?: RunbooksConfig; aws?: AwsClientFactory } = {},
) {
  const credentials = deps.credentials ?? createCredentialResolver(deps);
  const clients = clientFactory(deps);
  const session = async <T>(db: RegionConfigDb, what: string, fn: (client: pg.Client) => Promise<T>) =>
    withPg(await resolveLogin(db.login, { aws: db.aws }, credentials, clients), what, fn, {
      credentials: `${db.login.field}.credentials`,
      database: `${db.login.field}.location`,
    });

  return {
    async readRegions({ db, ids }: { db: RegionConfigDb; ids: string[] }): Promise<RegionRow[]> {
      return session(db, 'read region_config', async (client) => {
        const { rows } = await client.query<{ id: string; s3_uri: string; version: number }>(
          'SELECT id, s3_uri, version FROM region_config WHERE id = ANY($1) ORDER BY id',
          [ids],
        );
        return rows.map((r) => ({ id: r.id, s3Uri: r.s3_uri, version: r.version }));
      });
    },

    /** Points regions at other data; a row already at `to` counts as done. */
    async setRegionUris({ db, changes }: { db: RegionConfigDb; changes: UriChange[] }): Promise<void> {
      await session(db, 'update region_config.s3_uri', (client) =>
        inTransaction(client, async () => {
          for (const change of changes) {
            const { rowCount } = await client.query('UPDATE region_config SET s3_uri = $3 WHERE id = $1 AND s3_uri IN ($2, $3)', [
              change.id,
              change.from,
              change.to,
            ]);
            if (rowCount !== 1) throw changedUnderUs(change.id, `s3_uri is no longer ${change.from}`);
          }
        }),
      );
    },

    /** Adds new regions at version 1; a row that is already there with the same URI counts as done. */
    async addRegions({ db, regions }: { db: RegionConfigDb; regions: { id: string; s3Uri: string }[] }): Promise<void> {
      await session(db, 'add regions to region_config', (client) =>
        inTransaction(client, async () => {
          for (const region of regions) {
            await client.query('INSERT INTO region_config (id, s3_uri, version) VALUES ($1, $2, 1) ON CONFLICT (id) DO NOTHING', [
              region.id,
              region.s3Uri,
            ]);
            const { rows } = await client.query<{ s3_uri: string }>('SELECT s3_uri FROM region_config WHERE id = $1', [region.id]);
            if (rows[0]?.s3_uri !== region.s3Uri) throw changedUnderUs(region.id, `it exists with s3_uri ${rows[0]?.s3_uri}`);
          }
        }),
      );
    },

    async removeRegions({ db, ids }: { db: RegionConfigDb; ids: string[] }): Promise<void> {
      await session(db, 'remove regions from region_config', (client) =>
        client.query('DELETE FROM region_config WHERE id = ANY($1)', [ids]),
      );
    },

    /** Bumps each version from what preflight read to one more, so cached maps refresh; never twice. */
    async bumpVersions({ db, bumps }: { db: RegionConfigDb; bumps: VersionBump[] }): Promise<RegionRow[]> {
      return session(db, 'bump region_config.version', (client) =>
        inTransaction(client, async () => {
          const bumped: RegionRow[] = [];
          for (const bump of bumps) {
            const { rows } = await client.query<{ id: string; s3_uri: string; version: number }>(
              'UPDATE region_config SET version = $2 + 1 WHERE id = $1 AND version IN ($2, $2 + 1) RETURNING id, s3_uri, version',
              [bump.id, bump.from],
            );
            if (rows.length !== 1) throw changedUnderUs(bump.id, `its version is no longer ${bump.from}`);
            bumped.push({ id: rows[0]!.id, s3Uri: rows[0]!.s3_uri, version: rows[0]!.version });
          }
          return bumped;
        }),
      );
    },

    /** Undoes `bumpVersions`: each version back from its bump (from + 1) to `from`; one already back counts as done. */
    async restoreVersions({ db, bumps }: { db: RegionConfigDb; bumps: VersionBump[] }): Promise<RegionRow[]> {
      return session(db, 'restore region_config.version', (client) =>
        inTransaction(client, async () => {
          const restored: RegionRow[] = [];
          for (const bump of bumps) {
            const { rows } = await client.query<{ id: string; s3_uri: string; version: number }>(
              'UPDATE region_config SET version = $2 WHERE id = $1 AND version IN ($2, $2 + 1) RETURNING id, s3_uri, version',
              [bump.id, bump.from],
            );
            if (rows.length !== 1) throw changedUnderUs(bump.id, `its version is neither ${bump.from} nor ${bump.from + 1}`);
            restored.push({ id: rows[0]!.id, s3Uri: rows[0]!.s3_uri, version: rows[0]!.version });
          }
          return restored;
        }),
      );
    },
  };
}

export type RegionConfigActivities = ReturnType<typeof createRegionConfigActivities>;

async function inTransaction<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Someone else changed the row since preflight: retrying cannot help, a person must look. */
function changedUnderUs(id: string, what: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'RegionChangedConcurrently',
    message: `region ${id}: ${what} (changed by someone else during the run)`,
    nonRetryable: true,
  });
}
