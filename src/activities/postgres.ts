/**
 * PostgreSQL: look at the database to move, create the app role on the new
 * instance, and prove the copy equal to the original. Identifiers are always
 * quoted and passwords reach the server only as SCRAM verifiers, so neither a
 * hostile name nor the server's statement log can leak or inject anything.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Credentials, Login, PgConnection } from './pg-connect.js';
import { maintenanceDb, qualified, quoteIdent, quoteLiteral, resolveLogin, withPg } from './pg-connect.js';
import type { CredentialResolver, SecretSources } from './secrets.js';
import { heartbeatWhile } from './heartbeat.js';
import { passTestGate } from './test-gates.js';

export interface TableInfo {
  schema: string;
  name: string;
  /** The planner's estimate: cheap, and enough to size the copy. */
  estimatedRows: number;
  primaryKey: string[];
}

export interface DatabaseInspection {
  serverVersion: string;
  sizeBytes: number;
  encoding: string;
  tables: TableInfo[];
  sequences: number;
  /** The migrations table the application keeps, if any. */
  schemaMigration: { table: string; rows: number } | null;
}

export interface TableCheck {
  table: string;
  rows: number;
  /** How the content was compared: ordered pages by primary key, or an order-free sum of row hashes. */
  method: 'keyset-md5' | 'row-hash-sum';
  checksum: string;
}

export interface VerifyReport {
  tables: TableCheck[];
  rows: number;
  sequences: { name: string; lastValue: string | null }[];
  schemaMigration: { table: string; rows: number } | null;
}

/** What a verify attempt has proven so far; heartbeated, so a retried attempt resumes at the table and page it reached. */
interface VerifyProgress {
  done: TableCheck[];
  problems: string[];
  current?: { table: string; after: string[] | null; rows: number; checksum: string };
}

/** The table the application records its schema migrations in. */
const SCHEMA_MIGRATION_TABLE = 'schema_migration';
const DEFAULT_PAGE_ROWS = 5_000;
/** Enough differences to act on; the rest are counted. */
const PROBLEMS_SHOWN = 5;

export function createPostgresActivities(credentials: CredentialResolver) {
  const connect = (login: Login, sources: SecretSources) => resolveLogin(login, sources, credentials);

  return {
    /** Connects as `login` and reports what there is to move; a bad login or database name is bad input. */
    async inspectDatabase(args: { login: Login; sources: SecretSources }): Promise<DatabaseInspection> {
      const connection = await connect(args.login, args.sources);
      return withPg(connection, `inspect ${args.login.location.instance}`, inspect, {
        credentials: args.login.field,
        database: 'database',
      });
    },

    /**
     * Creates the application's login role on the new instance, or, when it
     * exists (a retried attempt, or a role kept from before), sets its
     * password so it matches the secret the application will use.
     */
    async ensureAppRole(args: {
      admin: Login;
      app: Credentials;
      appField: string;
      sources: SecretSources;
    }): Promise<{ created: boolean; grantedToAdmin: boolean }> {
      const admin = maintenanceDb(await connect(args.admin, args.sources));
      // The app's password is sent to the admin's instance (as the role's password): it must be bound there too.
      const to = { instance: args.admin.location.instance, host: admin.host, port: admin.port };
      const password = await credentials.password(args.app, to, args.sources, args.appField);
      return withPg(admin, `create role ${args.app.username} on ${args.admin.location.instance}`, (client) =>
        upsertLoginRole(client, args.app.username, password),
      );
    },

    /**
     * Proves the copy equal: the same tables, each with the same rows (count
     * and content checksum, so one changed row fails it), the same sequence
     * positions, and the same schema migrations. Throws `VerificationFailed`
     * listing what differs.
     */
    async verifyCopy(args: { source: Login; target: Login; sources: SecretSources; pageRows?: number }): Promise<VerifyReport> {
      const [source, target] = await Promise.all([connect(args.source, args.sources), connect(args.target, args.sources)]);
      const pageRows = args.pageRows ?? DEFAULT_PAGE_ROWS;
      // Inert outside tests: lets a test change the copy at this exact moment and see the check catch it.
      await passTestGate(verifyGate(args.target.location.instance));
      return withPg(source, `verify against ${args.source.location.instance}`, (src) =>
        withPg(target, `verify ${args.target.location.instance}`, (tgt) => verify(src, tgt, pageRows, args.target.location.instance)),
      );
    },
  };
}

export type PostgresActivities = ReturnType<typeof createPostgresActivities>;

/** The test gate (see test-gates.ts) verification passes before it reads anything. */
export function verifyGate(targetInstance: string): string {
  return `db-migration-verify-${targetInstance}`;
}

// --- inspecting ------------------------------------------------------------------------------------

async function inspect(client: pg.Client): Promise<DatabaseInspection> {
  const {
    rows: [about],
  } = await client.query<{ version: string; size: string; encoding: string }>(
    `SELECT current_setting('server_version') AS version, pg_database_size(current_database())::text AS size,
            pg_encoding_to_char(encoding) AS encoding
       FROM pg_database WHERE datname = current_database()`,
  );
  const tables = await listTables(client);
  const {
    rows: [sequences],
  } = await client.query<{ count: number }>('SELECT count(*)::int AS count FROM pg_sequences');
  return {
    serverVersion: about!.version,
    sizeBytes: Number(about!.size),
    encoding: about!.encoding,
    tables: tables.map(({ schema, name, estimatedRows, primaryKey }) => ({
      schema,
      name,
      estimatedRows,
      primaryKey: primaryKey.map((k) => k.name),
    })),
    sequences: sequences!.count,
    schemaMigration: await schemaMigration(client, tables),
  };
}

interface TableShape {
  schema: string;
  name: string;
  estimatedRows: number;
  primaryKey: { name: string; type: string }[];
}

/** Ordinary tables (partitions included, their parents not: a parent's rows are its partitions'), outside system schemas. */
async function listTables(client: pg.Client): Promise<TableShape[]> {
  const { rows } = await client.query<{
    schema: string;
    name: string;
    estimated_rows: string;
    key: { name: string; type: string }[] | null;
  }>(
    `SELECT n.nspname AS schema, c.relname AS name, greatest(c.reltuples, 0)::bigint::text AS estimated_rows,
            (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY k.ord)
               FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS key
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY 1, 2`,
  );
  return rows.map((r) => ({ schema: r.schema, name: r.name, estimatedRows: Number(r.estimated_rows), primaryKey: r.key ?? [] }));
}

async function schemaMigration(client: pg.Client, tables: TableShape[]): Promise<{ table: string; rows: number } | null> {
  const candidates = tables.filter((t) => t.name === SCHEMA_MIGRATION_TABLE);
  const table = candidates.find((t) => t.schema === 'public') ?? candidates[0];
  if (!table) return null;
  const {
    rows: [counted],
  } = await client.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM ${qualified(table.schema, table.name)}`);
  return { table: `${table.schema}.${table.name}`, rows: counted!.rows };
}

// --- the app role ----------------------------------------------------------------------------------

async function upsertLoginRole(client: pg.Client, role: string, password: string): Promise<{ created: boolean; grantedToAdmin: boolean }> {
  const verifier = quoteLiteral(scramSha256Verifier(password));
  let created = false;
  const exists = async () => (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 1;
  if (!(await exists())) {
    try {
      await client.query(`CREATE ROLE ${quoteIdent(role)} WITH LOGIN PASSWORD ${verifier}`);
      created = true;
    } catch (err) {
      // Another attempt created it between our look and our CREATE: fall through to ALTER.
      if ((err as { code?: string }).code !== '42710') throw err;
    }
  }
  if (!created) await client.query(`ALTER ROLE ${quoteIdent(role)} WITH LOGIN PASSWORD ${verifier}`);

  // RDS's master user is no superuser: to make the app role own the restored database it must be a member of it.
  const {
    rows: [me],
  } = await client.query<{ superuser: boolean; member: boolean }>(
    `SELECT rolsuper AS superuser, pg_has_role(current_user, $1, 'MEMBER') AS member FROM pg_roles WHERE rolname = current_user`,
    [role],
  );
  const grantedToAdmin = !me!.superuser && !me!.member;
  if (grantedToAdmin) await client.query(`GRANT ${quoteIdent(role)} TO CURRENT_USER`);
  return { created, grantedToAdmin };
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (what psql's
 * \password sends), so the plaintext never appears in a statement the server
 * might log. Like node-postgres's own login, it skips SASLprep, which leaves
 * ASCII passwords unchanged.
 */
export function scramSha256Verifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

// --- the database itself ---------------------------------------------------------------------------

/**
 * Drops the database (closing every session in it, a stale pg_restore's
 * included) and creates it empty, owned by `owner`: what makes a restore safe
 * to repeat.
 */
export async function recreateDatabase(admin: PgConnection, database: string, owner: string, encoding: string): Promise<void> {
  await withPg(maintenanceDb(admin), `recreate database ${database}`, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
    // template0: a pristine database, whatever someone added to template1.
    await client.query(
      `CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(owner)} TEMPLATE template0 ENCODING ${quoteLiteral(encoding)}`,
    );
  });
}

// --- verifying -------------------------------------------------------------------------------------

async function verify(src: pg.Client, tgt: pg.Client, pageRows: number, targetInstance: string): Promise<VerifyReport> {
  const progress = resumed(Context.current().info.heartbeatDetails);
  const problems = new Set(progress.problems);
  // Heartbeats carry the latest progress, also while one long query (a big table without a key) runs.
  return heartbeatWhile(
    () => compareAll(src, tgt, pageRows, targetInstance, progress, problems),
    () => ({ ...progress, problems: [...problems] }),
  );
}

async function compareAll(
  src: pg.Client,
  tgt: pg.Client,
  pageRows: number,
  targetInstance: string,
  progress: VerifyProgress,
  problems: Set<string>,
): Promise<VerifyReport> {
  const [sourceTables, targetTables] = await Promise.all([listTables(src), listTables(tgt)]);
  const targetNames = new Set(targetTables.map(tableName));
  const sourceNames = new Set(sourceTables.map(tableName));
  for (const name of sourceNames) if (!targetNames.has(name)) problems.add(`${name}: missing in ${targetInstance}`);
  for (const name of targetNames) if (!sourceNames.has(name)) problems.add(`${name}: in ${targetInstance} but not in the source`);

  const doneNames = new Set(progress.done.map((t) => t.table));
  for (const table of sourceTables) {
    const name = tableName(table);
    if (doneNames.has(name) || !targetNames.has(name)) continue;
    const resume = progress.current?.table === name ? progress.current : undefined;
    const onPage = (current: VerifyProgress['current']) => (progress.current = current);
    const outcome = table.primaryKey.length
      ? await compareByKey(src, tgt, table, pageRows, resume, onPage)
      : await compareByRowHashes(src, tgt, table);
    if (outcome.check) progress.done.push(outcome.check);
    else problems.add(`${name}: ${outcome.problem}`);
    progress.current = undefined;
  }

  const sequences = await compareSequences(src, tgt, problems);
  const migrations = await Promise.all([schemaMigration(src, sourceTables), schemaMigration(tgt, targetTables)]);
  if (migrations[0]?.rows !== migrations[1]?.rows) {
    problems.add(
      `${SCHEMA_MIGRATION_TABLE}: ${migrations[0]?.rows ?? 'no'} rows in the source, ${migrations[1]?.rows ?? 'none'} in ${targetInstance}`,
    );
  }

  if (problems.size) {
    const list = [...problems];
    const shown = list.slice(0, PROBLEMS_SHOWN).join('; ');
    throw ApplicationFailure.create({
      type: 'VerificationFailed',
      message: `${targetInstance} differs from the source: ${shown}${list.length > PROBLEMS_SHOWN ? ` (and ${list.length - PROBLEMS_SHOWN} more)` : ''}`,
      nonRetryable: true,
      details: [list],
    });
  }
  return { tables: progress.done, rows: progress.done.reduce((sum, t) => sum + t.rows, 0), sequences, schemaMigration: migrations[0] };
}

type Comparison = { check: TableCheck; problem?: undefined } | { problem: string; check?: undefined };

/**
 * Pages through the source by primary key; each target page covers exactly
 * the source page's key range, so an extra, missing or changed row on either
 * side changes that page's count or md5. Work per page is bounded, and the
 * progress (last key, running checksum) is small enough to heartbeat.
 */
async function compareByKey(
  src: pg.Client,
  tgt: pg.Client,
  table: TableShape,
  pageRows: number,
  resume: VerifyProgress['current'],
  onPage: (current: NonNullable<VerifyProgress['current']>) => void,
): Promise<Comparison> {
  const name = tableName(table);
  const sql = keysetQueries(table);
  let after = resume?.after ?? null;
  let rows = resume?.rows ?? 0;
  let checksum = resume?.checksum ?? '';
  for (;;) {
    const sourcePage = await src.query<{ rows: number; md5: string | null; last: string[] | null }>(
      after ? sql.pageAfter : sql.firstPage,
      after ? [...after, pageRows] : [pageRows],
    );
    const page = sourcePage.rows[0]!;
    if (page.rows === 0) break;
    const range = after ? [...after, ...page.last!] : page.last!;
    const targetPage = await tgt.query<{ rows: number; md5: string | null }>(after ? sql.rangeAfter : sql.rangeFirst, range);
    const other = targetPage.rows[0]!;
    if (other.rows !== page.rows || other.md5 !== page.md5) {
      const where = `${after ? `after (${after.join(', ')}) ` : ''}up to (${page.last!.join(', ')})`;
      return {
        problem: `rows ${where} differ (${page.rows} in the source, ${other.rows} in the copy${other.rows === page.rows ? ', content changed' : ''})`,
      };
    }
    rows += page.rows;
    checksum = md5(checksum + page.md5);
    after = page.last;
    onPage({ table: name, after, rows, checksum });
  }
  const tail = await tgt.query<{ rows: number }>(after ? sql.countAfter : sql.countAll, after ?? []);
  if (tail.rows[0]!.rows > 0) return { problem: `${tail.rows[0]!.rows} rows in the copy beyond the source's last key` };
  return { check: { table: name, rows, method: 'keyset-md5', checksum } };
}

/** The statements `compareByKey` runs, for one table; key values travel as text and are cast back to the key's types. */
function keysetQueries(table: TableShape) {
  const t = qualified(table.schema, table.name);
  const keys = table.primaryKey.map((k) => quoteIdent(k.name));
  const keyList = keys.join(', ');
  const keyDesc = keys.map((k) => `${k} DESC`).join(', ');
  const params = (from: number) => table.primaryKey.map((k, i) => `$${from + i}::text::${k.type}`).join(', ');
  const n = keys.length;
  const pageOf = (where: string, limitParam: number) =>
    `WITH page AS (SELECT * FROM ${t} ${where} ORDER BY ${keyList} LIMIT $${limitParam})
     SELECT count(*)::int AS rows, md5(string_agg(page::text, E'\\n' ORDER BY ${keyList})) AS md5,
            (SELECT ARRAY[${keys.map((k) => `${k}::text`).join(', ')}] FROM page ORDER BY ${keyDesc} LIMIT 1) AS last
       FROM page`;
  const rangeOf = (where: string) =>
    `SELECT count(*)::int AS rows, md5(string_agg(r::text, E'\\n' ORDER BY ${keyList})) AS md5 FROM ${t} r ${where}`;
  return {
    firstPage: pageOf('', 1),
    pageAfter: pageOf(`WHERE (${keyList}) > (${params(1)})`, n + 1),
    rangeFirst: rangeOf(`WHERE (${keyList}) <= (${params(1)})`),
    rangeAfter: rangeOf(`WHERE (${keyList}) > (${params(1)}) AND (${keyList}) <= (${params(n + 1)})`),
    countAll: `SELECT count(*)::int AS rows FROM ${t}`,
    countAfter: `SELECT count(*)::int AS rows FROM ${t} WHERE (${keyList}) > (${params(1)})`,
  };
}

/**
 * Tables without a primary key have no order to page in: each side sums a
 * 60-bit hash of every row (a multiset checksum: duplicates count, order does
 * not) in one pass with constant memory.
 */
async function compareByRowHashes(src: pg.Client, tgt: pg.Client, table: TableShape): Promise<Comparison> {
  const sql = `SELECT count(*)::int AS rows, coalesce(sum(('x' || substr(md5(r::text), 1, 15))::bit(60)::bigint), 0)::text AS sum
                 FROM ${qualified(table.schema, table.name)} r`;
  const [a, b] = await Promise.all([src.query<{ rows: number; sum: string }>(sql), tgt.query<{ rows: number; sum: string }>(sql)]);
  const [s, t] = [a.rows[0]!, b.rows[0]!];
  if (s.rows !== t.rows || s.sum !== t.sum) {
    return { problem: `${s.rows} rows in the source, ${t.rows} in the copy${s.rows === t.rows ? ', content changed' : ''}` };
  }
  return { check: { table: tableName(table), rows: s.rows, method: 'row-hash-sum', checksum: s.sum } };
}

async function compareSequences(
  src: pg.Client,
  tgt: pg.Client,
  problems: Set<string>,
): Promise<{ name: string; lastValue: string | null }[]> {
  const sql = `SELECT schemaname || '.' || sequencename AS name, last_value::text AS "lastValue" FROM pg_sequences ORDER BY 1`;
  const [a, b] = await Promise.all([
    src.query<{ name: string; lastValue: string | null }>(sql),
    tgt.query<{ name: string; lastValue: string | null }>(sql),
  ]);
  const copied = new Map(b.rows.map((s) => [s.name, s.lastValue]));
  for (const sequence of a.rows) {
    if (!copied.has(sequence.name)) problems.add(`sequence ${sequence.name}: missing in the copy`);
    else if (copied.get(sequence.name) !== sequence.lastValue) {
      problems.add(
        `sequence ${sequence.name}: last value ${sequence.lastValue ?? 'unset'} in the source, ${copied.get(sequence.name) ?? 'unset'} in the copy`,
      );
    }
  }
  return a.rows;
}

function resumed(details: unknown): VerifyProgress {
  const progress = details as Partial<VerifyProgress> | undefined;
  return { done: progress?.done ?? [], problems: progress?.problems ?? [], ...(progress?.current ? { current: progress.current } : {}) };
}

function tableName(table: { schema: string; name: string }): string {
  return `${table.schema}.${table.name}`;
}

function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}
