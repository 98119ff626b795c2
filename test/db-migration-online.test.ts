/**
 * `db-migration` in online mode, end to end: the real CLI and worker against
 * the sandbox, whose PostgreSQL runs with wal_level = logical, so the new
 * instance's database subscribes to the old one's on the same server. A
 * writer stands in for the application: it inserts and updates in the source
 * for as long as its ECS service runs on the old database, as the real
 * writers would, and stops when the run scales the service to 0.
 */
import assert from 'node:assert/strict';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import pg from 'pg';
import type { DbMigrationResult } from '../src/workflows/db-migration.js';
import { catchUpGate, SEQUENCE_GAP, syncGate } from '../src/activities/logical-replication.js';
import { SANDBOX_SOURCE, WRITERS_CLUSTER, type SeededAppDatabase } from '../src/stack/sandbox/db.js';
import { sandbox, testStack } from './setup.js';
import { activityAttempts, databaseHostOf, queryApp } from './helpers/sandbox-app.js';
import { runbook } from './helpers/cli.js';
import { queryStatus, waitForStatus, waitUntil } from './helpers/wait.js';
import { armGate } from './helpers/gates.js';
import { worker } from './helpers/worker.js';

const MOTO = { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
const idFor = (source: string) => `db-migration:sandbox:${source}`;
const newInstanceOf = (source: string) => `${source}-new`;
const TABLES = ['customers', 'products', 'orders', 'order_items', 'audit_log', 'schema_migration'];

let counter = 0;

describe('db-migration online (logical replication) on the sandbox', function () {
  this.timeout(6 * 60_000);
  let ecs: ECSClient;
  let rds: RDSClient;

  before(() => {
    ecs = new ECSClient({ endpoint: testStack().awsEndpoint, ...MOTO });
    rds = new RDSClient({ endpoint: testStack().awsEndpoint, ...MOTO });
  });

  beforeEach(() => worker().start());

  after(() => {
    ecs?.destroy();
    rds?.destroy();
  });

  async function seedSource(label: string, orders?: number): Promise<SeededAppDatabase> {
    // Named after the sandbox's instance: the sandbox's credentials are bound to `sandbox-appdb*`.
    const instance = `${SANDBOX_SOURCE}-onl-${label}-${process.pid}-${++counter}`;
    return sandbox().db.seedAppDatabase({ instance, writerService: `writer-${label}-${counter}`, ...(orders ? { orders } : {}) });
  }

  function startArgs(source: SeededAppDatabase, extra: string[] = []): string[] {
    return [
      'start',
      'db-migration',
      '--env',
      'sandbox',
      '--set',
      `sourceInstance=${source.instance}`,
      '--set',
      `newInstance.identifier=${newInstanceOf(source.instance)}`,
      '--set',
      `writers=${JSON.stringify([source.writer])}`,
      ...extra,
    ];
  }

  async function service(name: string): Promise<{ desiredCount: number; taskDefinition: string; runningCount: number }> {
    const { services = [] } = await ecs.send(new DescribeServicesCommand({ cluster: WRITERS_CLUSTER, services: [name] }));
    return {
      desiredCount: services[0]!.desiredCount!,
      taskDefinition: services[0]!.taskDefinition!,
      runningCount: services[0]!.runningCount ?? 0,
    };
  }

  /**
   * The application: each transaction inserts an order with its items and a
   * log line, and updates a product and a customer, for as long as the writer
   * service wants tasks on the old database. It notices the run's stop within
   * one poll, well before the run has seen the tasks stop.
   */
  function startAppWriter(source: SeededAppDatabase): { stop(): Promise<void>; writes(): number; stopped: Promise<number> } {
    let writes = 0;
    let halt = false;
    const stopped = (async () => {
      const client = new pg.Client({ connectionString: source.url });
      await client.connect();
      let lastCheck = 0;
      try {
        while (!halt) {
          if (Date.now() - lastCheck > 50) {
            lastCheck = Date.now();
            if ((await service(source.writer.service)).desiredCount === 0) break;
          }
          await client.query('BEGIN');
          const {
            rows: [order],
          } = await client.query<{ id: string }>(
            `INSERT INTO orders (customer_id, status, placed_at, note) VALUES (1 + $1::int % 500, 'placed', now(), 'online test') RETURNING id`,
            [writes],
          );
          await client.query(
            `INSERT INTO order_items (order_id, line, product_id, quantity, price_cents) VALUES ($1, 1, 1 + $2::int % 500, 1, 100), ($1, 2, 7, 2, 250)`,
            [order!.id, writes],
          );
          await client.query(`UPDATE products SET price_cents = price_cents + 1 WHERE id = 1 + $1::int % 500`, [writes]);
          await client.query(`UPDATE customers SET name = 'Customer ' || $1::int WHERE id = 1 + $1::int % 500`, [writes]);
          await client.query(
            `INSERT INTO audit_log (at, actor, action, payload) VALUES (now(), 'test', 'order.placed', jsonb_build_object('order', $1::bigint))`,
            [order!.id],
          );
          await client.query(`SELECT nextval('invoice_number_seq')`);
          await client.query('COMMIT');
          writes++;
        }
      } finally {
        await client.end();
      }
      return writes;
    })();
    return {
      writes: () => writes,
      stopped,
      stop: async () => {
        halt = true;
        await stopped.catch(() => undefined);
      },
    };
  }

  /** Per table: row count and an order-free checksum of every row. */
  async function tableChecksums(instanceId: string): Promise<Record<string, string>> {
    const sums: Record<string, string> = {};
    for (const table of TABLES) {
      const [row] = await queryApp<{ rows: number; sum: string }>(
        instanceId,
        `SELECT count(*)::int AS rows, coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text AS sum FROM ${table} t`,
      );
      sums[table] = `${row!.rows} rows, ${row!.sum}`;
    }
    return sums;
  }

  /** Slots, publications and subscriptions of the run that are still there. */
  async function replicationLeftovers(source: string, target: string): Promise<string[]> {
    const slots = await queryApp<{ name: string }>(
      'postgres',
      `SELECT slot_name AS name FROM pg_replication_slots WHERE database = '${source}'`,
    );
    const publications = await queryApp<{ name: string }>(source, 'SELECT pubname AS name FROM pg_publication');
    const subscriptions = await queryApp<{ name: string }>(
      'postgres',
      `SELECT subname AS name FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = '${target}'`,
    );
    return [
      ...slots.map((s) => `slot ${s.name}`),
      ...publications.map((p) => `publication ${p.name}`),
      ...subscriptions.map((s) => `subscription ${s.name}`),
    ];
  }

  async function approve(id: string, checkpoint: 'cutover' | 'delete-old'): Promise<void> {
    await waitForStatus(id, (s) => s.waitingFor?.checkpoint === checkpoint || (s.phase !== 'running' && s.phase !== 'waiting'), 240_000);
    const result = await runbook(['approve', id, '--checkpoint', checkpoint]);
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
  }

  /** What every successful online run must end with, checked at `delete-old` while both databases still exist. */
  async function assertMovedIntact(source: SeededAppDatabase, id: string): Promise<void> {
    const target = newInstanceOf(source.instance);
    await waitForStatus(id, (s) => s.waitingFor?.checkpoint === 'delete-old' || (s.phase !== 'running' && s.phase !== 'waiting'), 240_000);
    const status = await queryStatus(id);
    assert.equal(status.waitingFor?.checkpoint, 'delete-old', status.error ?? '');
    assert.deepEqual(await tableChecksums(target), await tableChecksums(source.instance), 'every table has the same rows on both sides');
    const sequences = async (instanceId: string) =>
      Number((await queryApp<{ v: string }>(instanceId, `SELECT last_value::text AS v FROM invoice_number_seq`))[0]!.v);
    const [sourceSeq, targetSeq] = [await sequences(source.instance), await sequences(target)];
    assert.ok(targetSeq > sourceSeq, `the new sequence (${targetSeq}) is ahead of the old one (${sourceSeq})`);
    assert.equal(targetSeq, sourceSeq + SEQUENCE_GAP);
    assert.deepEqual(await replicationLeftovers(source.instance, target), [], 'no slot, publication or subscription is left');
    const writer = await service(source.writer.service);
    assert.equal(writer.desiredCount, 2, 'the writers run again');
    const [created] = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: target }))).DBInstances ?? [];
    assert.equal(await databaseHostOf(ecs, writer.taskDefinition), created!.Endpoint!.Address, 'on the new instance');
  }

  async function finish(id: string): Promise<DbMigrationResult> {
    await approve(id, 'delete-old');
    const status = await waitForStatus(id, (s) => s.phase !== 'running' && s.phase !== 'waiting', 240_000);
    assert.equal(status.phase, 'succeeded', status.error ?? '');
    return status.result as DbMigrationResult;
  }

  it('copies while the writer writes, stops it only for the window, and ends with equal tables, sequences ahead and no slot left', async () => {
    const source = await seedSource('live');
    const id = idFor(source.instance);
    const app = startAppWriter(source);
    try {
      const started = await runbook(startArgs(source));
      assert.equal(started.exitCode, 0, started.stdout + started.stderr);
      await waitForStatus(id, (s) => s.waitingFor?.checkpoint === 'cutover' || (s.phase !== 'running' && s.phase !== 'waiting'), 240_000);
      const atCutover = await queryStatus(id);
      const steps = Object.fromEntries(atCutover.steps.map((s) => [s.name, s]));
      assert.equal(atCutover.waitingFor?.checkpoint, 'cutover', atCutover.error ?? '');
      assert.match(steps.preflight!.detail ?? '', /mode online: the default: .* can replicate \(wal_level logical/);
      assert.equal(steps['stop-writers']!.status, 'skipped');
      assert.equal(steps.backup!.status, 'skipped');
      assert.match(steps['initial-sync']!.detail ?? '', /^6\/6 tables streaming; lag \d+ bytes/);
      assert.match(atCutover.waitingFor!.prompt, /6\/6 tables streaming, \d+ bytes and [\d.]+ s behind.*stop writer-live/);
      const writesBeforeCutover = app.writes();
      assert.ok(writesBeforeCutover > 0, 'the writer wrote during the copy');
      assert.ok((await service(source.writer.service)).desiredCount > 0, 'the writers run until the cutover');
      // Still writing while the run waits: the subscription keeps up.
      await waitUntil(() => app.writes() > writesBeforeCutover + 20, { timeoutMs: 60_000, what: 'more writes' });

      await approve(id, 'cutover');
      const total = await app.stopped;
      assert.ok(total > writesBeforeCutover, 'the writer was stopped by the run');
      await assertMovedIntact(source, id);
      const counts = (await tableChecksums(newInstanceOf(source.instance))).orders!;
      assert.match(counts, new RegExp(`^${2000 + total} rows`), 'every order the writer placed is on the new instance');
      const result = await finish(id);
      assert.equal(result.mode, 'online');
      assert.equal(result.backup, null);
      assert.ok(
        result.writersStopped.ms > 0 &&
          Date.parse(result.writersStopped.to) - Date.parse(result.writersStopped.from) === result.writersStopped.ms,
      );
      const final = await queryStatus(id);
      assert.match(final.steps.find((s) => s.name === 'restore-writers')!.detail ?? '', /writers were stopped [\d.]+ s/);
      assert.match(
        final.steps.find((s) => s.name === 'drop-replication')!.detail ?? '',
        /dropped subscription runbook_migration_\w+, publication runbook_migration_\w+, slot runbook_migration_\w+/,
      );
    } finally {
      await app.stop();
    }
  });

  it('refuses online mode in preflight when a table has no primary key or replica identity, naming it (exit 2); unset, the mode falls back to dump and says why', async () => {
    const source = await seedSource('nokey');
    await queryApp(source.instance, 'CREATE TABLE events_raw (at timestamptz, what text)');
    const before = await service(source.writer.service);

    const refused = await runbook(startArgs(source, ['--set', 'mode=online']));
    assert.equal(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(
      refused.stdout + refused.stderr,
      /mode: online needs logical replication from sandbox-appdb-onl-nokey-\S+: public\.events_raw has no primary key or replica identity/,
    );
    assert.doesNotMatch(refused.stdout + refused.stderr, /audit_log/, 'a table with REPLICA IDENTITY FULL is fine');
    const status = await waitForStatus(idFor(source.instance), (s) => s.phase !== 'running' && s.phase !== 'waiting');
    assert.equal(status.steps.find((s) => s.name === 'preflight')?.status, 'failed');
    assert.deepEqual(await service(source.writer.service), before, 'the writers were not touched');

    const dry = await runbook(startArgs(source, ['--dry-run', '--wait']));
    assert.equal(dry.exitCode, 0, dry.stdout + dry.stderr);
    const planned = await waitForStatus(idFor(source.instance), (s) => s.dryRun && s.phase === 'succeeded');
    assert.match(
      planned.steps.find((s) => s.name === 'preflight')?.detail ?? '',
      /mode dump: online is not possible: public\.events_raw has no primary key/,
    );
    assert.equal(planned.steps.find((s) => s.name === 'publish')?.detail, 'dump mode');
  });

  it('a schema change on the source during the copy fails the run with that reason: writers stay on the old database, replication objects removed', async () => {
    const source = await seedSource('ddl');
    const id = idFor(source.instance);
    const before = await service(source.writer.service);
    const gate = armGate(syncGate(newInstanceOf(source.instance)));
    const started = await runbook(startArgs(source));
    assert.equal(started.exitCode, 0, started.stdout + started.stderr);
    await gate.reached(180_000);
    await queryApp(source.instance, 'ALTER TABLE orders ADD COLUMN coupon text');
    await queryApp(source.instance, 'CREATE TABLE gift_cards (code text PRIMARY KEY)');
    gate.open();

    const status = await waitForStatus(id, (s) => s.phase !== 'running' && s.phase !== 'waiting', 120_000);
    assert.equal(status.phase, 'rolled-back', status.error ?? '');
    assert.match(
      status.error ?? '',
      /the schema of sandbox-appdb-onl-ddl-\S+ changed during the copy \(DDL is not replicated\): table public\.gift_cards created; table public\.orders altered \(now: .*coupon text\)/,
    );
    assert.equal(status.steps.find((s) => s.name === 'initial-sync')?.status, 'failed');
    assert.equal(status.steps.find((s) => s.name === 'publish')?.status, 'compensated');
    const after = await service(source.writer.service);
    assert.deepEqual(
      { desired: after.desiredCount, definition: after.taskDefinition },
      { desired: before.desiredCount, definition: before.taskDefinition },
      'the writers still run on the old database',
    );
    assert.deepEqual(await replicationLeftovers(source.instance, newInstanceOf(source.instance)), []);
  });

  it('SIGKILL of the worker during the initial copy and inside the window: the run resumes and ends as an uninterrupted one', async () => {
    const source = await seedSource('crash');
    const id = idFor(source.instance);
    const target = newInstanceOf(source.instance);
    const app = startAppWriter(source);
    try {
      const sync = armGate(syncGate(target));
      const started = await runbook(startArgs(source));
      assert.equal(started.exitCode, 0, started.stdout + started.stderr);
      await sync.reached(180_000);
      await worker().kill('SIGKILL');
      await worker().start();
      sync.open();

      const window = armGate(catchUpGate(target));
      await approve(id, 'cutover');
      await window.reached(180_000);
      await app.stopped; // the writers are stopped: the kill lands inside the window
      await worker().kill('SIGKILL');
      await worker().start();
      window.open();

      await assertMovedIntact(source, id);
      const attempts = await activityAttempts(id);
      assert.ok(attempts.waitForSync! >= 2, 'the sync wait was resumed after the first kill');
      assert.ok(attempts.catchUp! >= 2, 'the catch-up was resumed after the second kill');
      assert.match(
        (await queryStatus(id)).steps.find((s) => s.name === 'subscribe')!.detail ?? '',
        /created on/,
        'one subscription, made once',
      );
      const result = await finish(id);
      assert.equal(result.mode, 'online');
    } finally {
      await app.stop();
    }
  });
});
