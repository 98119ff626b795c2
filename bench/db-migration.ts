/**
 * db-migration's writers-stopped window, three ways, on one generated database:
 *
 *   seed     pg_dump -d appdb > dump.sql && psql -d appdb < dump.sql (writers stopped throughout)
 *   dump     the runbook's dump mode: backup (pg_dump -Fd -j N, upload to S3) + restore
 *            (download, re-create, pg_restore -j N) + verify, all while the writers are stopped
 *   online   the runbook's online mode: schema copy, publication, subscription and initial
 *            sync while CLIENTS writers run transactions (the window's "before"); then the
 *            window: writers stopped, catch-up to the source's WAL position, sequences,
 *            row counts of every table
 *
 * as the app user into an empty database, on the local stack: the runbook's
 * own activities (run outside Temporal), moto for S3, the local PostgreSQL
 * server. Not part of `npm test`; run it once, it takes minutes at 1 GB.
 *
 *   npm run bench:db-migration     ORDERS=n resizes (~1,500,000 make 1 GB), ROUNDS=n repeats the dump rounds,
 *                                  JOBS=n sets -j, CLIENTS=n writer connections during the online copy
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createDbMigrationActivities, type DbMigrationActivities } from '../src/activities/db-migration.js';
import type { Credentials, DatabaseLocation, EndpointMap, Login } from '../src/activities/pg-connect.js';
import type { SecretSources } from '../src/activities/secrets.js';
import type { InstanceInfo } from '../src/activities/rds.js';
import { parseConfig, type AwsConnection } from '../src/config.js';
import { MOTO_AWS_ENV, startStack, type Stack } from '../src/stack/index.js';
import { seedSandbox, type Sandbox } from '../src/stack/sandbox/index.js';
import { withClient } from '../src/stack/sandbox/pg.js';

/** ~150,000 orders (three items each) make about 100 MiB; a margin keeps us above it. */
const ORDERS = Number(process.env.ORDERS ?? 1_600_000);
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const MIN_BYTES = 100 * 2 ** 20;
const SOURCE = 'sandbox-appdb-bench'; // the sandbox's credentials are bound to sandbox-appdb*
const RUNBOOK_TARGET = 'bench-appdb-runbook';
const SEED_TARGET = 'bench-appdb-plain';
const ONLINE_TARGET = 'bench-appdb-online';

interface RunbookTiming {
  backupMs: number;
  restoreMs: number;
  downloadMs: number;
  pgRestoreMs: number;
  files: number;
  bytes: number;
}

interface SeedTiming {
  dumpMs: number;
  psqlMs: number;
  bytes: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-'));
  const stack = await startStack({ dataDir: join(dir, 'stack'), log: (line) => console.log(`  ${line}`) });
  Object.assign(process.env, MOTO_AWS_ENV);
  const sandbox = await seedSandbox({ awsEndpoint: stack.awsEndpoint, postgresUrl: stack.postgresUrl, postgresCa: stack.postgresCa });
  try {
    const jobs = Number(process.env.JOBS ?? Math.min(8, availableParallelism()));
    console.log(`Seeding ${SOURCE} with ${ORDERS} orders…`);
    const seeded = await sandbox.db.seedAppDatabase({ instance: SOURCE, writerService: 'bench-writer', orders: ORDERS });
    const size = await databaseSize(seeded.url);
    if (size < MIN_BYTES) throw new Error(`the database is ${mib(size)}, under 100 MiB: raise ORDERS`);
    console.log(`${SOURCE}: ${mib(size)} (pg_database_size)`);

    const runbookWay = await runbookCopier(stack, sandbox, dir, jobs);
    const seedWay = seedCopier(stack, sandbox, dir);
    const runbookTimes: RunbookTiming[] = [];
    const seedTimes: SeedTiming[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const r = await runbookWay.copy(round);
      const s = await seedWay.copy();
      runbookTimes.push(r);
      seedTimes.push(s);
      console.log(
        `round ${round}: runbook ${seconds(r.backupMs + r.restoreMs)} (backup ${seconds(r.backupMs)}, restore ${seconds(r.restoreMs)}); ` +
          `seed ${seconds(s.dumpMs + s.psqlMs)} (pg_dump ${seconds(s.dumpMs)}, psql ${seconds(s.psqlMs)})`,
      );
    }
    const verifyStarted = Date.now();
    const verified = await runbookWay.verify();
    const verifyMs = Date.now() - verifyStarted;
    // Dump and restore run over once each round; the seed and the runbook alike leave the source as it was.
    console.log('Online mode: replicating while the writers write…');
    const online = await onlineCopier(stack, sandbox, runbookWay.created).copy();

    const r = runbookTimes[0]!;
    const s = seedTimes[0]!;
    const runbookMs = median(runbookTimes.map((t) => t.backupMs + t.restoreMs));
    const seedMs = median(seedTimes.map((t) => t.dumpMs + t.psqlMs));
    console.log(
      `
Database          ${mib(size)}: ${verified.rows} rows in ${verified.tables} tables (copy verified equal); ${jobs} jobs on ${availableParallelism()} CPUs
Runbook, via S3   median ${seconds(runbookMs)}: backup ${seconds(median(runbookTimes.map((t) => t.backupMs)))} ` +
        `(pg_dump -Fd -Z1 and upload, ${r.files} files, ${mib(r.bytes)}) + restore ${seconds(median(runbookTimes.map((t) => t.restoreMs)))} ` +
        `(download ${seconds(median(runbookTimes.map((t) => t.downloadMs)))}, re-create and pg_restore ${seconds(median(runbookTimes.map((t) => t.pgRestoreMs)))})
Seed, plain SQL   median ${seconds(seedMs)}: pg_dump ${seconds(median(seedTimes.map((t) => t.dumpMs)))} (${mib(s.bytes)} of SQL) + psql ${seconds(median(seedTimes.map((t) => t.psqlMs)))}
Ratio             ${(seedMs / runbookMs).toFixed(2)} (seed time / runbook time: above 1, the runbook is faster)

Writers stopped   seed ${seconds(seedMs)} | dump mode ${seconds(runbookMs + verifyMs)} (copy ${seconds(runbookMs)} + verify ${seconds(verifyMs)}) | ` +
        `online mode ${seconds(online.windowMs)} (catch-up ${seconds(online.catchUpMs)}, sequences ${seconds(online.sequencesMs)}, row counts ${seconds(online.countsMs)})
Online total      ${seconds(online.totalMs)}: schema ${seconds(online.schemaMs)}, initial sync ${seconds(online.syncMs)} with ${CLIENTS} writers at ` +
        `${online.tps.toFixed(0)} tps (${online.writes} transactions), window ${seconds(online.windowMs)}, drop replication ${seconds(online.dropMs)}; ${online.rows} rows compared equal`,
    );
  } finally {
    await sandbox.stop();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The runbook's backup and restore activities, as a worker runs them, into a new "instance" of the sandbox. */
async function runbookCopier(stack: Stack, sandbox: Sandbox, dir: string, jobs: number) {
  const defaults = sandbox.db.defaults;
  const aws = (sandbox.environment as { aws: AwsConnection }).aws;
  const sources: SecretSources = { aws };
  const app: Credentials = { env: 'sandbox', ...defaults.credentials.app };
  const admin: Credentials = { env: 'sandbox', ...defaults.credentials.admin };
  const environments = parseConfig(JSON.stringify({ environments: { sandbox: sandbox.environment } }));
  const endpointMap = defaults.endpointMap as EndpointMap;
  const activities: DbMigrationActivities = createDbMigrationActivities({
    pgBinDir: stack.pgBinDir,
    workDir: join(dir, 'work'),
    environments,
  });
  const mock = new MockActivityEnvironment();
  // Activities outside a worker: MockActivityEnvironment gives them a Context (heartbeats, cancellation).
  const call = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => mock.run(fn, ...args) as Promise<R>;

  const source = await call(activities.describeDbInstance, { aws, identifier: SOURCE, field: 'sourceInstance' });
  const created = await call(activities.createDbInstance, {
    aws,
    identifier: RUNBOOK_TARGET,
    like: source,
    dbName: defaults.database,
    admin,
    adminField: 'credentials.admin',
    sources,
    tls: 'disable',
    endpointMap,
    deadline: new Date(Date.now() + 60_000).toISOString(),
  });
  const location = (instance: string, endpoint = created.endpoint!): DatabaseLocation => ({
    instance,
    endpoint,
    database: defaults.database,
    tls: 'disable',
    endpointMap,
  });
  const login = (instance: string, credentials: Credentials, field: string): Login => ({
    location: location(instance),
    credentials,
    field,
  });
  await call(activities.ensureAppRole, {
    admin: login(RUNBOOK_TARGET, admin, 'credentials.admin'),
    app,
    appField: 'credentials.app',
    sources,
  });

  return {
    created,
    async copy(round: number): Promise<RunbookTiming> {
      const storage = { aws, bucket: defaults.backup.bucket, prefix: `bench/round-${round}/` };
      const backupStarted = Date.now();
      const backup = await call(activities.backupDatabase, { source: login(SOURCE, app, 'credentials.app'), sources, storage, jobs });
      const backupMs = Date.now() - backupStarted;
      const restoreStarted = Date.now();
      const restored = await call(activities.restoreBackup, {
        storage,
        admin: login(RUNBOOK_TARGET, admin, 'credentials.admin'),
        app: login(RUNBOOK_TARGET, app, 'credentials.app'),
        sources,
        jobs,
        encoding: 'UTF8',
      });
      return {
        backupMs,
        restoreMs: Date.now() - restoreStarted,
        downloadMs: restored.downloadMs,
        pgRestoreMs: restored.restoreMs,
        files: backup.files,
        bytes: backup.bytes,
      };
    },
    async verify(): Promise<{ tables: number; rows: number }> {
      const report = await call(activities.verifyCopy, {
        source: login(SOURCE, app, 'credentials.app'),
        target: login(RUNBOOK_TARGET, app, 'credentials.app'),
        sources,
      });
      return { tables: report.tables.length, rows: report.rows };
    },
  };
}

interface OnlineTiming {
  schemaMs: number;
  syncMs: number;
  windowMs: number;
  catchUpMs: number;
  sequencesMs: number;
  countsMs: number;
  dropMs: number;
  totalMs: number;
  writes: number;
  tps: number;
  rows: number;
}

/** Online mode's activities, in the workflow's order, with writers running until the window opens. */
function onlineCopier(stack: Stack, sandbox: Sandbox, like: InstanceInfo) {
  const defaults = sandbox.db.defaults;
  const aws = (sandbox.environment as { aws: AwsConnection }).aws;
  const sources: SecretSources = { aws };
  const endpointMap = defaults.endpointMap as EndpointMap;
  const environments = parseConfig(JSON.stringify({ environments: { sandbox: sandbox.environment } }));
  const activities: DbMigrationActivities = createDbMigrationActivities({ pgBinDir: stack.pgBinDir, environments });
  const mock = new MockActivityEnvironment();
  const call = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => mock.run(fn, ...args) as Promise<R>;
  const login = (instance: string, credentials: Credentials, field: string): Login => ({
    location: { instance, endpoint: like.endpoint!, database: defaults.database, tls: 'disable', endpointMap },
    credentials,
    field,
  });
  const app = (instance: string) => login(instance, { env: 'sandbox', ...defaults.credentials.app }, 'credentials.app');
  const admin = (instance: string) => login(instance, { env: 'sandbox', ...defaults.credentials.admin }, 'credentials.admin');
  const names = { name: 'runbook_migration_bench' };
  const pair = { source: admin(SOURCE), target: admin(ONLINE_TARGET), sources, names };
  const deadline = () => new Date(Date.now() + 3_600_000).toISOString();

  return {
    async copy(): Promise<OnlineTiming> {
      const writers = startWriters(sandbox.db.databaseUrl(SOURCE), CLIENTS);
      const started = Date.now();
      const schema = await call(activities.copySchema, {
        source: app(SOURCE),
        admin: admin(ONLINE_TARGET),
        app: app(ONLINE_TARGET),
        sources,
        encoding: 'UTF8',
      });
      const schemaMs = Date.now() - started;
      await call(activities.publish, { replication: admin(SOURCE), sources, names });
      await call(activities.subscribe, pair);
      await call(activities.waitForSync, { ...pair, fingerprint: schema.fingerprint, deadline: deadline() });
      const syncMs = Date.now() - started - schemaMs;
      const windowStarted = Date.now();
      const { writes, tps } = await writers.stop();
      const catchUp = await call(activities.catchUp, { ...pair, fingerprint: schema.fingerprint, deadline: deadline() });
      const sequencesStarted = Date.now();
      await call(activities.copySequences, { source: app(SOURCE), target: admin(ONLINE_TARGET), sources });
      const countsStarted = Date.now();
      const counts = await call(activities.compareCounts, { source: app(SOURCE), target: app(ONLINE_TARGET), sources });
      const windowEnded = Date.now();
      await call(activities.dropReplication, pair);
      const ended = Date.now();
      return {
        schemaMs,
        syncMs,
        windowMs: windowEnded - windowStarted,
        catchUpMs: catchUp.waitedMs,
        sequencesMs: countsStarted - sequencesStarted,
        countsMs: windowEnded - countsStarted,
        dropMs: ended - windowEnded,
        totalMs: windowEnded - started,
        writes,
        tps,
        rows: counts.rows,
      };
    },
  };
}

/** `clients` connections, each placing orders (an insert into three tables, two updates) back to back until stopped. */
function startWriters(url: string, clients: number): { stop(): Promise<{ writes: number; tps: number }> } {
  let halt = false;
  let writes = 0;
  const started = Date.now();
  const loops = Array.from({ length: clients }, async (_, n) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (let i = n; !halt; i += clients) {
        await client.query('BEGIN');
        const {
          rows: [order],
        } = await client.query<{ id: string }>(
          `INSERT INTO orders (customer_id, status, placed_at, note) VALUES (1 + $1::int % 500, 'placed', now(), 'bench') RETURNING id`,
          [i],
        );
        await client.query(
          'INSERT INTO order_items (order_id, line, product_id, quantity, price_cents) VALUES ($1, 1, 1 + $2::int % 500, 1, 100)',
          [order!.id, i],
        );
        await client.query('UPDATE products SET price_cents = price_cents + 1 WHERE id = 1 + $1::int % 500', [i]);
        await client.query(`INSERT INTO audit_log (at, actor, action) VALUES (now(), 'bench', 'order.placed')`);
        await client.query('COMMIT');
        writes++;
      }
    } finally {
      await client.end();
    }
  });
  return {
    async stop() {
      halt = true;
      await Promise.all(loops);
      return { writes, tps: writes / ((Date.now() - started) / 1000) };
    },
  };
}

/** The seed's commands, word for word but for the names, as the app user into an empty database. */
function seedCopier(stack: Stack, sandbox: Sandbox, dir: string) {
  const server = new URL(stack.postgresUrl);
  const appUser = sandbox.db.defaults.credentials.app.username;
  const libpq = { PGHOST: server.hostname, PGPORT: server.port, PGUSER: appUser, PGPASSWORD: sandbox.db.passwords[1]! };
  const dumpFile = join(dir, 'dump.sql');
  return {
    async copy(): Promise<SeedTiming> {
      await withClient(stack.postgresUrl, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(SEED_TARGET)}`);
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(SEED_TARGET)} OWNER ${pg.escapeIdentifier(appUser)}`);
      });
      const started = Date.now();
      await execa(join(stack.pgBinDir, 'pg_dump'), ['-d', SOURCE], { env: libpq, stdout: { file: dumpFile } });
      const dumpMs = Date.now() - started;
      await execa(join(stack.pgBinDir, 'psql'), ['-q', '-d', SEED_TARGET], { env: libpq, stdin: { file: dumpFile }, stdout: 'ignore' });
      return { dumpMs, psqlMs: Date.now() - started - dumpMs, bytes: statSync(dumpFile).size };
    },
  };
}

async function databaseSize(url: string): Promise<number> {
  return withClient(url, async (client) =>
    Number((await client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')).rows[0]!.size),
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
