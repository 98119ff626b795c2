/**
 * PostgreSQL for local runs: a private cluster on its own port, built from the
 * machine's PostgreSQL binaries. initdb and postgres refuse to run as root, so
 * as root the cluster belongs to, and runs as, the `postgres` system user.
 */
import { execa } from 'execa';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, parse } from 'node:path';
import { findOnPath, isExecutable } from './executables.js';
import { startServer, type ManagedServer } from './process.js';

const SERVICE_USER = 'postgres';
/** Kept inside the cluster, so the password lives and dies with it. */
const PASSWORD_FILE = 'runbook-password';
/** Unix socket paths are limited to 107 bytes. */
const MAX_SOCKET_PATH = 100;
const READY_TIMEOUT_MS = 30_000;

export interface PostgresOptions {
  /** The cluster folder (PGDATA). */
  dataDir: string;
  port: number;
  logFile: string;
  /** Wipe and re-create the cluster, rather than reuse one left there. */
  fresh: boolean;
}

export interface PostgresServer extends ManagedServer {
  /** Superuser connection URL: "postgresql://postgres:<password>@127.0.0.1:<port>/postgres". */
  url: string;
  port: number;
  password: string;
  /** Holds psql, pg_dump and pg_restore matching the server. */
  binDir: string;
  /** Where the cluster really is: `dataDir`, or a temporary folder when the postgres user cannot reach that. */
  dataDir: string;
}

interface Account {
  uid: number;
  gid: number;
}

/** Starts a private cluster; resolves once it answers `SELECT 1`. */
export async function startPostgres(options: PostgresOptions): Promise<PostgresServer> {
  const binDir = await findPgBinDir();
  const owner = await clusterOwner();
  const { dir, temporaryParent } = await placeCluster(options.dataDir, owner);
  const temporaryDirs = temporaryParent ? [temporaryParent] : [];
  try {
    const password = await ensureCluster(dir, binDir, owner, options.fresh || temporaryDirs.length > 0);
    const url = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/postgres`;
    const server = await startServer({
      name: 'postgres',
      command: join(binDir, 'postgres'),
      args: serverArgs(dir, options.port),
      cwd: dir,
      user: owner,
      // The server's own libpq (a subscription dialling its publisher) reads ~/.postgresql for client
      // certificates: the service user's home, not the home of whoever started the stack.
      env: { ...process.env, HOME: dir },
      logFile: options.logFile,
      // "Fast" shutdown, what `pg_ctl stop -m fast` sends. The postmaster must stop its
      // backends itself: each calls setsid(), so a process-group kill would miss them.
      stopSignal: 'SIGINT',
      removeAfterStop: temporaryDirs,
      ready: { what: `PostgreSQL on 127.0.0.1:${options.port}`, timeoutMs: READY_TIMEOUT_MS, check: () => answersQueries(url) },
    });
    return Object.assign(server, { url, port: options.port, password, binDir, dataDir: dir });
  } catch (error) {
    await Promise.all(temporaryDirs.map((path) => rm(path, { recursive: true, force: true })));
    throw error;
  }
}

/** `PG_BIN`, else the newest /usr/lib/postgresql/<version>/bin, else `pg_config --bindir`. */
export async function findPgBinDir(): Promise<string> {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) {
    if (await hasServerBinaries(fromEnv)) return fromEnv;
    throw new Error(`PG_BIN is set to ${fromEnv}, which does not hold initdb and postgres.`);
  }
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  for (const version of versions.sort((a, b) => Number(b) - Number(a))) {
    const dir = join('/usr/lib/postgresql', version, 'bin');
    if (await hasServerBinaries(dir)) return dir;
  }
  const pgConfig = await findOnPath('pg_config');
  if (pgConfig) {
    const { stdout, failed } = await execa(pgConfig, ['--bindir'], { reject: false });
    if (!failed && (await hasServerBinaries(stdout.trim()))) return stdout.trim();
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, postgres) not found. Install them (Debian/Ubuntu: apt-get install postgresql) ' +
      'or set PG_BIN to the folder that holds them.',
  );
}

async function hasServerBinaries(dir: string): Promise<boolean> {
  return (await isExecutable(join(dir, 'initdb'))) && (await isExecutable(join(dir, 'postgres')));
}

/** As root, the `postgres` system user; otherwise ourselves (undefined). */
async function clusterOwner(): Promise<Account | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([idOf(['-u', SERVICE_USER]), idOf(['-g', SERVICE_USER])]);
  if (uid === undefined || gid === undefined) {
    throw new Error(
      `PostgreSQL refuses to run as root, and there is no \`${SERVICE_USER}\` user to run it as. ` +
        'Install the postgresql package (it creates that user) or run as a non-root user.',
    );
  }
  return { uid, gid };
}

async function idOf(args: string[]): Promise<number | undefined> {
  const { stdout, failed } = await execa('id', args, { reject: false });
  return failed ? undefined : Number(stdout.trim());
}

/**
 * `dataDir` when the cluster owner can reach it; otherwise (say, under a 0700
 * temp folder or /root) a temporary folder under the system temp dir, which the
 * guard deletes when the server stops.
 */
async function placeCluster(dataDir: string, owner: Account | undefined): Promise<{ dir: string; temporaryParent?: string }> {
  await mkdir(dirname(dataDir), { recursive: true });
  if (!owner || (await canTraverseAncestors(dirname(dataDir), owner))) return { dir: dataDir };
  const parent = await mkdtemp(join(tmpdir(), 'runbook-pg-'));
  await chown(parent, owner.uid, owner.gid);
  return { dir: join(parent, basename(dataDir)), temporaryParent: parent };
}

async function canTraverseAncestors(dir: string, account: Account): Promise<boolean> {
  for (let current = dir; ; current = dirname(current)) {
    const { mode, uid, gid } = await stat(current);
    const bit = uid === account.uid ? 0o100 : gid === account.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return false;
    if (current === parse(current).root) return true;
  }
}

/** Reuses an initialised cluster unless `fresh`; otherwise runs initdb. Returns the superuser password. */
async function ensureCluster(dir: string, binDir: string, owner: Account | undefined, fresh: boolean): Promise<string> {
  const passwordFile = join(dir, PASSWORD_FILE);
  if (!fresh) {
    const existing = await readFile(passwordFile, 'utf8').catch(() => undefined);
    if (existing && (await isFile(join(dir, 'PG_VERSION'))) && (await isFile(join(dir, 'server.crt')))) return existing.trim();
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  if (owner) await chown(dir, owner.uid, owner.gid);
  const password = randomBytes(18).toString('base64url');
  await initdb(dir, binDir, owner, password);
  await makeCertificates(dir, owner);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * The cluster serves TLS, as every RDS instance does, so the encrypted path is
 * the one tests exercise: a throwaway CA (kept as `root.crt` beside the data)
 * signs a certificate for 127.0.0.1 and localhost.
 */
async function makeCertificates(dir: string, owner: Account | undefined): Promise<void> {
  const run = (args: string[]) =>
    execa('openssl', args, { cwd: dir, all: true }).catch((err: { all?: string; shortMessage?: string }) => {
      throw new Error(`openssl could not make the sandbox PostgreSQL certificates (${err.shortMessage}):\n${err.all ?? ''}`);
    });
  await run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '3650',
    '-subj',
    '/CN=temporal-runbooks sandbox CA',
    '-keyout',
    'root.key',
    '-out',
    'root.crt',
  ]);
  await run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'root.crt',
    '-CAkey',
    'root.key',
    '-CAcreateserial',
    '-days',
    '3650',
    '-extfile',
    'server.ext',
    '-out',
    'server.crt',
  ]);
  for (const file of ['root.key', 'server.key', 'server.crt', 'root.crt']) {
    if (owner) await chown(join(dir, file), owner.uid, owner.gid);
  }
  await execa('chmod', ['600', 'root.key', 'server.key'], { cwd: dir });
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (found) => found.isFile(),
    () => false,
  );
}

async function initdb(dir: string, binDir: string, owner: Account | undefined, password: string): Promise<void> {
  // Next to the cluster: the owner can reach it, and initdb wants an empty folder.
  const pwfile = join(dirname(dir), `.${basename(dir)}.pwfile`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (owner) await chown(pwfile, owner.uid, owner.gid);
    const args = [
      '-D',
      dir,
      '-U',
      'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      `--pwfile=${pwfile}`,
      '--encoding=UTF8',
      '--no-locale',
      '--no-sync', // a throwaway cluster: not worth waiting for the disk
    ];
    const result = await execa(join(binDir, 'initdb'), args, { cwd: dir, uid: owner?.uid, gid: owner?.gid, all: true, reject: false });
    if (result.failed) throw new Error(`initdb failed for ${dir} (${result.shortMessage}):\n${result.all}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

function serverArgs(dir: string, port: number): string[] {
  return [
    '-D',
    dir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-k',
    socketDir(dir, port),
    '-c',
    'ssl=on',
    '-c',
    'ssl_cert_file=server.crt',
    '-c',
    'ssl_key_file=server.key',
    // Durability is not worth the IO on a cluster that is re-created every start.
    '-c',
    'fsync=off',
    '-c',
    'full_page_writes=off',
    // As RDS with rds.logical_replication = 1: db-migration's online mode replicates between the sandbox's databases.
    '-c',
    'wal_level=logical',
  ];
}

/** Inside the cluster (only its owner can reach it), or none at all if the path is too long for a socket. */
function socketDir(dir: string, port: number): string {
  return `${dir}/.s.PGSQL.${port}`.length <= MAX_SOCKET_PATH ? dir : '';
}

async function answersQueries(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {}); // a dying connection must not crash us while we poll
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}
