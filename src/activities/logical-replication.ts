/**
 * db-migration's `online` mode: PostgreSQL logical replication from the old
 * instance to the new one, so the initial copy runs while the writers keep
 * writing and the writers-stopped window is only the catch-up.
 *
 *   checkLogicalReplication   preflight: can this source publish? (wal_level, role, keys, slots, versions)
 *   copySchema                pg_dump --schema-only, restored into a freshly created database
 *   publish / subscribe       a publication and a slot on the source, a subscription on the target
 *   waitForSync               every table copied and streaming; heartbeats per-table state and lag
 *   catchUp                   (writers stopped) the subscription has confirmed the source's current LSN
 *   copySequences / compareCounts
 *   dropReplication           subscription, publication and every slot of it gone (a slot left behind fills the source's disk)
 *
 * Every object is named after the run, so a retried or resumed attempt looks
 * it up by name and never makes a second one. The slot is created apart from
 * the subscription: on one cluster (the sandbox) CREATE SUBSCRIPTION cannot
 * create its own slot, and a slot we made is one we know to drop.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { heartbeatWhile } from './heartbeat.js';
import {
  checkLoginBeforeTool,
  pgChildEnv,
  physicalAddress,
  qualified,
  quoteIdent,
  quoteLiteral,
  resolveLogin,
  withPg,
  type Login,
  type PgConnection,
} from './pg-connect.js';
import { pgToolFinder, runTool } from './pg-tools.js';
import { recreateDatabase } from './postgres.js';
import type { CredentialResolver, SecretSources } from './secrets.js';
import { clientFactory, type AwsClientFactory } from './aws.js';
import { passTestGate } from './test-gates.js';
import type { HeartbeatProgress } from '../progress.js';
import { formatBytes } from '../format.js';

export interface LogicalReplicationDeps {
  pgBinDir?: string;
  workDir?: string;
  aws?: AwsClientFactory;
}

/** The names of one run's replication objects: the publication, the slot and the subscription share one. */
export interface ReplicationNames {
  name: string;
}

export interface ReplicationReadiness {
  /** Empty when the source can replicate; otherwise each reason, naming the change needed. */
  problems: string[];
  walLevel: string;
  serverVersion: string;
  tables: number;
}

export interface SyncProgress {
  tables: number;
  ready: number;
  /** Tables not yet streaming, with their state ("copying", "waiting"…), at most a few. */
  pending: string[];
  lagBytes: number;
  lagSeconds: number;
}

/** The initial sync's heartbeat: its own fields, and the shared progress shape `runbook watch` and `status` draw. */
export function syncHeartbeat(sync: SyncProgress): SyncProgress & { progress: HeartbeatProgress } {
  return {
    ...sync,
    progress: {
      done: sync.ready,
      total: sync.tables,
      unit: 'tables streaming',
      // Tables can fall back to copying (a restarted sync worker): a level, not work done.
      level: true,
      note: `lag ${formatBytes(sync.lagBytes)}, ${sync.lagSeconds.toFixed(1)} s${sync.pending.length ? `; ${sync.pending.join(', ')}` : ''}`,
    },
  };
}

export interface CountsReport {
  tables: number;
  rows: number;
  /** Rows of each table at the window: what the new database is recounted against before the old one is deleted. */
  perTable: Record<string, number>;
}

/** A table, its columns and their types: what the copy's schema must still match. */
type SchemaShape = Record<string, string>;

const POLL_MS = 500;
/** Sequences on the new instance start this many increments past the source's last value: room for a value handed out but not yet logged. */
export const SEQUENCE_GAP = 1000;
/** Tables named in a refusal; the rest are counted. */
const NAMED = 10;

const STATES: Record<string, string> = { i: 'initializing', d: 'copying', f: 'copied', s: 'synchronized', r: 'ready' };

export function createLogicalReplicationActivities(deps: LogicalReplicationDeps, credentials: CredentialResolver) {
  const tool = pgToolFinder(deps.pgBinDir);
  const scratch = deps.workDir ?? join(tmpdir(), 'runbook-db-migration');
  const clients = clientFactory(deps);
  const connect = (login: Login, sources: SecretSources) => resolveLogin(login, sources, credentials, clients);

  return {
    /**
     * Preflight of online mode, read-only: everything logical replication
     * needs from the source, each missing piece as a problem naming the change.
     * `replication` is the login the new instance will replicate with.
     */
    async checkLogicalReplication(args: {
      app: Login;
      replication: Login;
      sources: SecretSources;
      targetVersion: string;
      rds: boolean;
    }): Promise<ReplicationReadiness> {
      const [app, replication] = await Promise.all([connect(args.app, args.sources), connect(args.replication, args.sources)]);
      const role = await withPg(
        replication,
        `check ${args.replication.credentials.username} on ${args.replication.location.instance}`,
        replicationRights,
        { credentials: args.replication.field },
      );
      return withPg(
        app,
        `check ${args.app.location.instance} for logical replication`,
        async (client) => {
          const found = await readReadiness(client, args.targetVersion, args.rds);
          if (!role)
            found.problems.push(
              `${args.replication.credentials.username} may not replicate: ${args.rds ? 'GRANT rds_replication TO' : 'ALTER ROLE ... REPLICATION for'} ${args.replication.credentials.username} (${args.replication.field})`,
            );
          return found;
        },
        { credentials: args.app.field, database: 'database' },
      );
    },

    /**
     * `pg_dump --schema-only` of the source as the app, restored into a
     * freshly (re-)created database owned by the app: tables, keys, indexes and
     * sequences exist before a row arrives. Safe to repeat: it starts from an
     * empty database each time.
     */
    async copySchema(args: {
      source: Login;
      admin: Login;
      app: Login;
      sources: SecretSources;
      encoding: string;
    }): Promise<{ tables: number; fingerprint: string }> {
      const [source, admin, app] = await Promise.all([
        connect(args.source, args.sources),
        connect(args.admin, args.sources),
        connect(args.app, args.sources),
      ]);
      const dir = join(scratch, `schema-${attemptTag()}`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, 'schema.dump');
      try {
        return await heartbeatWhile(async () => {
          const shape = await withPg(source, `read the schema of ${args.source.location.instance}`, schemaShape);
          await runTool(
            await tool('pg_dump'),
            ['--schema-only', '--format=custom', '--no-publications', '--no-subscriptions', '--no-password', `--file=${file}`],
            pgChildEnv(source),
            `pg_dump --schema-only of ${args.source.location.instance}`,
          );
          const database = physicalAddress(args.app.location).database;
          await recreateDatabase(admin, database, app.user, args.encoding);
          // pg_restore answers whatever challenge the server sends: log in once the way it will, refusing weak ones first.
          await checkLoginBeforeTool({ ...app, database }, 0, 'pg_restore');
          await runTool(
            await tool('pg_restore'),
            ['--no-owner', `--role=${app.user}`, '--exit-on-error', '--no-password', `--dbname=${database}`, file],
            pgChildEnv(app),
            `restore the schema into ${args.app.location.instance}`,
          );
          return { tables: Object.keys(shape).length, fingerprint: fingerprint(shape) };
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },

    /** The publication of every table, and the slot, on the source; both found by name when they exist. */
    async publish(args: {
      replication: Login;
      sources: SecretSources;
      names: ReplicationNames;
    }): Promise<{ createdPublication: boolean; createdSlot: boolean }> {
      const connection = await connect(args.replication, args.sources);
      const { name } = args.names;
      return withPg(connection, `publish ${args.replication.location.instance}`, async (client) => {
        const havePublication = (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name])).rowCount === 1;
        if (!havePublication) await client.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR ALL TABLES`);
        const haveSlot = (await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name])).rowCount === 1;
        if (!haveSlot) await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
        return { createdPublication: !havePublication, createdSlot: !haveSlot };
      });
    },

    /**
     * The subscription on the target, which starts the initial copy. Looked
     * up by name first: a resumed run never creates it twice. The connection
     * it keeps holds the replication login's password: it lives in the
     * target's catalog (as with any subscription), never in the run's history.
     */
    async subscribe(args: {
      source: Login;
      target: Login;
      sources: SecretSources;
      names: ReplicationNames;
    }): Promise<{ created: boolean }> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      const { name } = args.names;
      return withPg(target, `subscribe ${args.target.location.instance} to ${args.source.location.instance}`, async (client) => {
        if ((await client.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name])).rowCount === 1) return { created: false };
        await client.query(
          `CREATE SUBSCRIPTION ${quoteIdent(name)} CONNECTION ${quoteLiteral(conninfo(source))} PUBLICATION ${quoteIdent(name)}
             WITH (create_slot = false, slot_name = ${quoteLiteral(name)}, copy_data = true)`,
        );
        return { created: true };
      });
    },

    /**
     * Waits until every table is copied and streaming, heartbeating each
     * table's state and the lag. Fails at once, naming the change, when the
     * source's schema moves away from the copy's (DDL is not replicated) or the
     * subscription keeps failing.
     */
    async waitForSync(args: {
      source: Login;
      target: Login;
      sources: SecretSources;
      names: ReplicationNames;
      fingerprint: string;
      deadline: string;
    }): Promise<SyncProgress> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      let progress: SyncProgress | undefined;
      return withPg(source, `follow the replication from ${args.source.location.instance}`, (src) =>
        withPg(target, `follow the subscription on ${args.target.location.instance}`, (tgt) =>
          heartbeatWhile(
            async () => {
              const errorsBefore = await subscriptionErrors(tgt, args.names.name);
              for (;;) {
                await passTestGate(syncGate(args.target.location.instance), progress);
                await refuseSchemaChange(src, tgt, args.fingerprint, args.source.location.instance);
                await refuseFailingSubscription(tgt, args.names.name, errorsBefore);
                progress = await syncProgress(src, tgt, args.names.name);
                if (progress.ready === progress.tables) return progress;
                if (Date.now() > Date.parse(args.deadline)) {
                  throw ApplicationFailure.create({
                    type: 'SyncTimedOut',
                    message: `the initial copy did not finish by ${args.deadline}: ${progress.ready}/${progress.tables} tables streaming, still ${progress.pending.join(', ')}`,
                    nonRetryable: true,
                  });
                }
                await Context.current().sleep(POLL_MS);
              }
            },
            () => progress && syncHeartbeat(progress),
          ),
        ),
      );
    },

    /** The lag now, for the cutover prompt: bytes and seconds behind, tables streaming. */
    async replicationLag(args: { source: Login; target: Login; sources: SecretSources; names: ReplicationNames }): Promise<SyncProgress> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      return withPg(source, 'read the replication lag', (src) =>
        withPg(target, 'read the subscription', (tgt) => syncProgress(src, tgt, args.names.name)),
      );
    },

    /**
     * With the writers stopped: the source's current WAL position, then wait
     * until the subscription has confirmed it (everything written is on the
     * target). The position is heartbeated, so a retried attempt waits for the same one.
     */
    async catchUp(args: {
      source: Login;
      target: Login;
      sources: SecretSources;
      names: ReplicationNames;
      fingerprint: string;
      deadline: string;
    }): Promise<{ lsn: string; waitedMs: number }> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      const started = Date.now();
      const resumed = Context.current().info.heartbeatDetails as { lsn?: string } | undefined;
      return withPg(source, `catch up with ${args.source.location.instance}`, (src) =>
        withPg(target, `the subscription on ${args.target.location.instance}`, async (tgt) => {
          await passTestGate(catchUpGate(args.target.location.instance), resumed);
          await refuseSchemaChange(src, tgt, args.fingerprint, args.source.location.instance);
          const lsn = resumed?.lsn ?? (await currentPosition(src));
          Context.current().heartbeat({ lsn });
          const errorsBefore = await subscriptionErrors(tgt, args.names.name);
          for (;;) {
            const {
              rows: [slot],
            } = await src.query<{ reached: boolean | null }>(
              'SELECT confirmed_flush_lsn >= $2::pg_lsn AS reached FROM pg_replication_slots WHERE slot_name = $1',
              [args.names.name, lsn],
            );
            if (!slot)
              throw ApplicationFailure.create({
                type: 'ReplicationBroken',
                message: `the replication slot ${args.names.name} is gone from ${args.source.location.instance}`,
                nonRetryable: true,
              });
            if (slot.reached) return { lsn, waitedMs: Date.now() - started };
            await refuseFailingSubscription(tgt, args.names.name, errorsBefore);
            if (Date.now() > Date.parse(args.deadline)) {
              throw ApplicationFailure.create({
                type: 'CatchUpTimedOut',
                message: `the subscription did not confirm ${lsn} by ${args.deadline}`,
                nonRetryable: true,
              });
            }
            Context.current().heartbeat({ lsn });
            await Context.current().sleep(50);
          }
        }),
      );
    },

    /** Every sequence on the target set `SEQUENCE_GAP` increments past the source's last value (logical replication does not carry them). */
    async copySequences(args: { source: Login; target: Login; sources: SecretSources }): Promise<{ sequences: number }> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      const { rows } = await withPg(source, 'read the sequences', (c) =>
        c.query<{ schema: string; name: string; last: string | null; step: string }>(
          'SELECT schemaname AS schema, sequencename AS name, last_value::text AS last, increment_by::text AS step FROM pg_sequences',
        ),
      );
      await withPg(target, 'set the sequences', async (c) => {
        for (const s of rows) {
          if (s.last === null) continue; // never used: its start value is right as restored
          await c.query(`SELECT setval($1::regclass, $2::bigint + $3::bigint * ${SEQUENCE_GAP})`, [
            qualified(s.schema, s.name),
            s.last,
            s.step,
          ]);
        }
      });
      return { sequences: rows.length };
    },

    /** Every table's row count, on both sides; throws `VerificationFailed` naming the tables that differ. */
    async compareCounts(args: { source: Login; target: Login; sources: SecretSources }): Promise<CountsReport> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      return heartbeatWhile(async () => {
        const [a, b] = await Promise.all([withPg(source, 'count the source', rowCounts), withPg(target, 'count the copy', rowCounts)]);
        const differ = Object.keys({ ...a, ...b })
          .filter((t) => a[t] !== b[t])
          .map((t) => `${t}: ${a[t] ?? 'missing'} in the source, ${b[t] ?? 'missing'} in the copy`);
        if (differ.length) {
          throw ApplicationFailure.create({
            type: 'VerificationFailed',
            message: `row counts differ: ${differ.slice(0, NAMED).join('; ')}`,
            nonRetryable: true,
          });
        }
        return { tables: Object.keys(a).length, rows: Object.values(a).reduce((s, n) => s + n, 0), perTable: a };
      });
    },

    /**
     * Drops the subscription (detached from its slot first: on one cluster it
     * could not drop its own), then the publication and every slot of the run
     * on the source, the table-copy slots included. Safe to repeat, and safe
     * when any of them was never made.
     */
    async dropReplication(args: {
      source: Login;
      target: Login;
      sources: SecretSources;
      names: ReplicationNames;
    }): Promise<{ dropped: string[] }> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      const { name } = args.names;
      const dropped: string[] = [];
      const subscription = await withPg(target, `drop the subscription on ${args.target.location.instance}`, async (c) => {
        const {
          rows: [found],
        } = await c.query<{ oid: string }>('SELECT oid::text AS oid FROM pg_subscription WHERE subname = $1', [name]);
        if (!found) return undefined;
        await c.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} DISABLE`);
        await c.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`);
        await c.query(`DROP SUBSCRIPTION ${quoteIdent(name)}`);
        dropped.push(`subscription ${name}`);
        return found.oid;
      }).catch((err: { type?: string }) => {
        // The target database does not exist (the run failed before the schema copy): nothing to drop there.
        if (err.type === 'DatabaseNotFound') return undefined;
        throw err;
      });
      await withPg(source, `drop the publication and slots on ${args.source.location.instance}`, async (c) => {
        if ((await c.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [name])).rowCount) {
          await c.query(`DROP PUBLICATION ${quoteIdent(name)}`);
          dropped.push(`publication ${name}`);
        }
        const syncSlots = subscription ? `pg\\_${subscription}\\_sync\\_%` : null;
        for (;;) {
          const { rows } = await c.query<{ slot: string; pid: number | null }>(
            'SELECT slot_name AS slot, active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 OR ($2::text IS NOT NULL AND slot_name LIKE $2)',
            [name, syncSlots],
          );
          if (!rows.length) return;
          for (const { slot, pid } of rows) {
            // A walsender still serving it (its subscriber just stopped) holds it a moment longer.
            if (pid !== null) await c.query('SELECT pg_terminate_backend($1)', [pid]);
            else if (
              (
                await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [
                  slot,
                ])
              ).rowCount
            )
              dropped.push(`slot ${slot}`);
          }
          await Context.current().sleep(100);
        }
      });
      return { dropped };
    },
  };
}

export type LogicalReplicationActivities = ReturnType<typeof createLogicalReplicationActivities>;

/** Test gates (see test-gates.ts): inside the initial copy, and inside the window before the catch-up. */
export function syncGate(targetInstance: string): string {
  return `db-migration-sync-${targetInstance}`;
}
export function catchUpGate(targetInstance: string): string {
  return `db-migration-catch-up-${targetInstance}`;
}

// --- reading the source ---------------------------------------------------------------------------

async function replicationRights(client: pg.Client): Promise<boolean> {
  const {
    rows: [me],
  } = await client.query<{ ok: boolean }>(
    `SELECT rolsuper OR rolreplication OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication' AND pg_has_role(current_user, r.oid, 'MEMBER')) AS ok
       FROM pg_roles WHERE rolname = current_user`,
  );
  return me!.ok;
}

async function readReadiness(client: pg.Client, targetVersion: string, rds: boolean): Promise<ReplicationReadiness> {
  const problems: string[] = [];
  const {
    rows: [s],
  } = await client.query<{
    wal_level: string;
    version: string;
    slots: number;
    used_slots: number;
    senders: number;
    used_senders: number;
    sync_workers: number;
  }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('server_version') AS version,
            current_setting('max_replication_slots')::int AS slots, (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
            current_setting('max_wal_senders')::int AS senders, (SELECT count(*)::int FROM pg_stat_replication) AS used_senders,
            current_setting('max_sync_workers_per_subscription')::int AS sync_workers`,
  );
  if (s!.wal_level !== 'logical') {
    problems.push(
      rds
        ? `wal_level is ${s!.wal_level}: set rds.logical_replication = 1 in the instance's DB parameter group (a static parameter: the instance must be rebooted to apply it)`
        : `wal_level is ${s!.wal_level}: set wal_level = logical and restart the server`,
    );
  }
  const { rows: tables } = await client.query<{ name: string; key: boolean; identity: string; unlogged: boolean }>(
    `SELECT format('%s.%s', n.nspname, c.relname) AS name, c.relpersistence = 'u' AS unlogged, c.relreplident AS identity,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) AS key
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1`,
  );
  const keyless = tables.filter((t) => t.identity === 'n' || (t.identity !== 'f' && !t.key)).map((t) => t.name);
  if (keyless.length)
    problems.push(
      `${named(keyless)} ${keyless.length === 1 ? 'has' : 'have'} no primary key or replica identity (updates and deletes could not be replicated): add a primary key or ALTER TABLE ... REPLICA IDENTITY FULL`,
    );
  const unlogged = tables.filter((t) => t.unlogged).map((t) => t.name);
  if (unlogged.length)
    problems.push(`${named(unlogged)} ${unlogged.length === 1 ? 'is' : 'are'} unlogged (never replicated): ALTER TABLE ... SET LOGGED`);
  // The run's own slot, plus one per table copied at once.
  const needed = 1 + Math.min(tables.length, s!.sync_workers);
  if (s!.slots - s!.used_slots < needed)
    problems.push(
      `${s!.slots - s!.used_slots} free replication slots of ${s!.slots}, ${needed} needed: raise max_replication_slots or drop unused slots`,
    );
  if (s!.senders - s!.used_senders < needed)
    problems.push(`${s!.senders - s!.used_senders} free WAL senders of ${s!.senders}, ${needed} needed: raise max_wal_senders`);
  const [from, to] = [major(s!.version), major(targetVersion)];
  if (from < 10) problems.push(`PostgreSQL ${s!.version} has no logical replication (10 or newer)`);
  else if (to < from)
    problems.push(
      `the new instance (${targetVersion}) is older than the source (${s!.version}): logical replication needs the same or a newer version`,
    );
  return { problems, walLevel: s!.wal_level, serverVersion: s!.version, tables: tables.length };
}

/** Every ordinary table's columns and types, keyed by table. */
async function schemaShape(client: pg.Client): Promise<SchemaShape> {
  const { rows } = await client.query<{ name: string; columns: string }>(
    `SELECT format('%s.%s', n.nspname, c.relname) AS name,
            string_agg(format('%s %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      GROUP BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.columns]));
}

function fingerprint(shape: SchemaShape): string {
  return createHash('sha256')
    .update(JSON.stringify(Object.entries(shape).sort()))
    .digest('hex');
}

/** DDL is not replicated: a table created or altered on the source since the schema copy stops the run, naming it. */
async function refuseSchemaChange(src: pg.Client, tgt: pg.Client, expected: string, source: string): Promise<void> {
  const now = await schemaShape(src);
  if (fingerprint(now) === expected) return;
  const copied = await schemaShape(tgt);
  const changes = [
    ...Object.keys(now)
      .filter((t) => !(t in copied))
      .map((t) => `table ${t} created`),
    ...Object.keys(copied)
      .filter((t) => !(t in now))
      .map((t) => `table ${t} dropped`),
    ...Object.keys(now)
      .filter((t) => t in copied && copied[t] !== now[t])
      .map((t) => `table ${t} altered (now: ${now[t]})`),
  ];
  throw ApplicationFailure.create({
    type: 'SourceSchemaChanged',
    message: `the schema of ${source} changed during the copy (DDL is not replicated): ${changes.join('; ') || 'tables changed'}; run the migration again once the schema is settled`,
    nonRetryable: true,
  });
}

/**
 * A WAL position after every write committed so far: a logical message
 * written now (its record is decoded and confirmed like any other), or the
 * insert position where the login may not write one.
 */
async function currentPosition(src: pg.Client): Promise<string> {
  try {
    return (await src.query<{ lsn: string }>(`SELECT pg_logical_emit_message(false, 'runbook-db-migration', 'catch-up')::text AS lsn`))
      .rows[0]!.lsn;
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    return (await src.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  }
}

async function subscriptionErrors(tgt: pg.Client, name: string): Promise<number> {
  const {
    rows: [row],
  } = await tgt.query<{ errors: number }>(
    'SELECT coalesce(sum(apply_error_count + sync_error_count), 0)::int AS errors FROM pg_stat_subscription_stats WHERE subname = $1',
    [name],
  );
  return row?.errors ?? 0;
}

/** The subscription retries a failing change forever; a few failures in a row mean it will not get through without help. */
async function refuseFailingSubscription(tgt: pg.Client, name: string, before: number): Promise<void> {
  const errors = await subscriptionErrors(tgt, name);
  if (errors - before < 3) return;
  throw ApplicationFailure.create({
    type: 'ReplicationFailing',
    message: `the subscription ${name} failed ${errors - before} times applying the source's changes (the target's server log says why; a schema change on the source is the usual cause)`,
    nonRetryable: true,
  });
}

async function syncProgress(src: pg.Client, tgt: pg.Client, name: string): Promise<SyncProgress> {
  const { rows } = await tgt.query<{ name: string; state: string }>(
    `SELECT format('%s.%s', n.nspname, c.relname) AS name, r.srsubstate AS state
       FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE s.subname = $1 ORDER BY 1`,
    [name],
  );
  const {
    rows: [lag],
  } = await src.query<{ bytes: string | null; seconds: number | null }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint::text AS bytes,
            extract(epoch FROM r.replay_lag)::float8 AS seconds
       FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [name],
  );
  const pending = rows.filter((r) => r.state !== 'r');
  return {
    tables: rows.length,
    ready: rows.length - pending.length,
    pending: pending.slice(0, NAMED).map((r) => `${r.name} ${STATES[r.state] ?? r.state}`),
    lagBytes: Math.max(0, Number(lag?.bytes ?? 0)),
    lagSeconds: lag?.seconds ?? 0,
  };
}

async function rowCounts(client: pg.Client): Promise<Record<string, number>> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'`,
  );
  const counts: Record<string, number> = {};
  for (const t of tables) {
    const {
      rows: [r],
    } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${qualified(t.schema, t.name)}`);
    counts[`${t.schema}.${t.name}`] = Number(r!.n);
  }
  return counts;
}

/**
 * libpq connection string for the subscription (the new instance dials the
 * source): every value single-quoted, quotes and backslashes escaped, so no
 * password can add or change a keyword.
 */
export function conninfo(c: PgConnection): string {
  const value = (v: string | number) => `'${String(v).replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  return [
    `host=${value(c.host)}`,
    `port=${value(c.port)}`,
    `dbname=${value(c.database)}`,
    `user=${value(c.user)}`,
    `password=${value(c.password)}`,
    // The new instance dials the source with the connection's own TLS mode; `sslrootcert=system` (libpq 16+)
    // would be needed for verify-full on the subscriber, whose file system the worker cannot write.
    `sslmode=${c.tls.mode === 'disable' ? 'disable' : 'require'}`,
  ].join(' ');
}

function named(names: string[]): string {
  return names.slice(0, NAMED).join(', ') + (names.length > NAMED ? ` (and ${names.length - NAMED} more)` : '');
}

function major(version: string): number {
  return Number.parseInt(version, 10);
}

/** Unique per activity attempt, for scratch folders. */
function attemptTag(): string {
  const { info } = Context.current();
  return createHash('sha256')
    .update(`${info.workflowExecution?.runId ?? ''}/${info.activityId}/${info.attempt}`)
    .digest('hex')
    .slice(0, 16);
}
