/**
 * The sandbox app's migrations, by image: what `run migration:run` in an
 * image of a given tag applies to the `districtbuilder` database. Migrations
 * run in order, each in its own transaction (as TypeORM's `each` mode does),
 * and a failing one stops the run: the ones before it stay applied, so a
 * failure really leaves the schema partly migrated.
 */
import pg from 'pg';

export interface AppMigration {
  version: string;
  sql: string;
}

export interface MigrationRunReport {
  /** The log lines the migration command writes. */
  lines: string[];
  exitCode: number;
  applied: string[];
}

/** Migrations each sandbox image tag carries, oldest first; tests add their own. */
export class AppMigrations {
  private readonly byTag = new Map<string, AppMigration[]>();

  constructor(images: Record<string, AppMigration[]>) {
    for (const [tag, migrations] of Object.entries(images)) this.byTag.set(tag, [...migrations]);
  }

  of(tag: string): AppMigration[] {
    return [...(this.byTag.get(tag) ?? [])];
  }

  /** A new migration in the image of `tag` (a test's "next commit"). */
  add(tag: string, migration: AppMigration): void {
    this.byTag.set(tag, [...this.of(tag), migration]);
  }

  remove(tag: string, version: string): void {
    this.byTag.set(
      tag,
      this.of(tag).filter((m) => m.version !== version),
    );
  }

  /** Runs the image's pending migrations against the database, as the app's migration command would. */
  async run(tag: string, databaseUrl: string): Promise<MigrationRunReport> {
    const lines = [`query: SELECT * FROM schema_migration ORDER BY applied_at (image tag ${tag})`];
    const applied: string[] = [];
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string }>('SELECT version FROM schema_migration');
      const done = new Set(rows.map((r) => r.version));
      const pending = this.of(tag).filter((m) => !done.has(m.version));
      lines.push(pending.length ? `${pending.length} migrations are new migrations must be executed.` : 'No migrations are pending');
      for (const migration of pending) {
        try {
          await client.query('BEGIN');
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migration (version, applied_at) VALUES ($1, clock_timestamp())', [migration.version]);
          await client.query('COMMIT');
          applied.push(migration.version);
          lines.push(`Migration ${migration.version} has been executed successfully.`);
        } catch (err) {
          await client.query('ROLLBACK');
          lines.push(
            `Migration "${migration.version}" failed, error: ${(err as Error).message}`,
            `QueryFailedError: ${(err as Error).message}`,
          );
          return { lines, exitCode: 1, applied };
        }
      }
      return { lines, exitCode: 0, applied };
    } finally {
      await client.end();
    }
  }
}

/** Three commits of the sandbox app: the one running now, a newer one without migrations, and one with new migrations. */
export const SANDBOX_COMMITS = { current: '3f0c2a1', plain: 'c7d9e42', migrating: 'a476b78' } as const;

const BASE: AppMigration[] = [
  { version: '20240101000000_create_district_plan', sql: 'CREATE TABLE district_plan (id serial PRIMARY KEY, name text NOT NULL)' },
  { version: '20240102000000_add_plan_owner', sql: 'ALTER TABLE district_plan ADD COLUMN owner text' },
  { version: '20240103000000_create_region_archive', sql: 'CREATE TABLE region_archive (id text PRIMARY KEY, archived_at timestamptz)' },
];
const REGION_LINK: AppMigration[] = [
  { version: '20240201000000_add_plan_region', sql: 'ALTER TABLE district_plan ADD COLUMN region_id text' },
  { version: '20240202000000_index_plan_region', sql: 'CREATE INDEX district_plan_region_idx ON district_plan (region_id)' },
];

export function sandboxAppMigrations(): AppMigrations {
  return new AppMigrations({
    [SANDBOX_COMMITS.current]: BASE,
    [SANDBOX_COMMITS.migrating]: [...BASE, ...REGION_LINK],
    [SANDBOX_COMMITS.plain]: BASE,
  });
}

/** The table, and the rows of the migrations the current image has already run. */
export async function seedSchemaMigration(databaseUrl: string, owner: string, migrations: AppMigrations): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migration (version text PRIMARY KEY, applied_at timestamptz NOT NULL)');
    await client.query(`ALTER TABLE schema_migration OWNER TO ${pg.escapeIdentifier(owner)}`);
    for (const [i, m] of migrations.of(SANDBOX_COMMITS.current).entries()) {
      await client.query(m.sql);
      await client.query(
        `INSERT INTO schema_migration (version, applied_at) VALUES ($1, '2024-01-01T00:00:00Z'::timestamptz + $2 * interval '1 day')`,
        [m.version, i],
      );
    }
  } finally {
    await client.end();
  }
}
