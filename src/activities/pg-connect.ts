/**
 * Reaching a database that an RDS instance holds: where it really is (RDS's
 * endpoint, or the sandbox's mapping of it), logging in with a credential the
 * worker's config binds to that destination, over TLS verified as the
 * environment says, refusing password challenges that would expose the
 * password, and turning PostgreSQL errors into Temporal failures. Resolved
 * connections never leave the activity that made them.
 */
import { DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import { ApplicationFailure } from '@temporalio/activity';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import pg from 'pg';
import type { Destination } from '../credentials.js';
import { abortable, awsFailure, invalidInput, type AwsClientFactory } from './aws.js';
import type { CredentialResolver, Credentials, SecretSources, TlsSettings } from './secrets.js';

export type { Credentials } from './secrets.js';

export interface Endpoint {
  host: string;
  port: number;
}

/**
 * For emulated environments (moto): RDS endpoints lead nowhere, so every
 * instance is a database on one real PostgreSQL server. `database` is a
 * template: `{instance}` and `{database}` are replaced by the instance
 * identifier and the database name inside it.
 */
export interface EndpointMap {
  host: string;
  port: number;
  database: string;
}

/** A database as the runbook knows it: an instance, its endpoint, and the database inside. No credentials. */
export interface DatabaseLocation {
  /** The RDS instance identifier; for a bare host (`host` set), the host. */
  instance: string;
  /** Unset: looked up with DescribeDBInstances when connecting, so the host comes from the RDS API. */
  endpoint?: Endpoint;
  database: string;
  /** `require`: the environment's TLS settings (`databaseTls`); `disable` only for local servers on unprotected environments. */
  tls: 'require' | 'disable';
  endpointMap?: EndpointMap;
  /** Set when the location is a host name an operator gave, not an RDS instance (unprotected environments only). */
  host?: boolean;
}

/** Credentials for a location, and the input field that names them (for errors). */
export interface Login {
  location: DatabaseLocation;
  credentials: Credentials;
  field: string;
}

/** A resolved connection: holds a password, so it stays inside the activity. */
export interface PgConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  tls: TlsSettings;
}

/** Where the database really is: RDS's endpoint, or its mapping onto the emulator's server. */
export function physicalAddress(location: DatabaseLocation): { host: string; port: number; database: string } {
  const map = location.endpointMap;
  if (!map) {
    if (!location.endpoint) throw new Error(`${location.instance} has no endpoint yet`);
    return { ...location.endpoint, database: location.database };
  }
  return {
    host: map.host,
    port: map.port,
    database: map.database.replaceAll('{instance}', location.instance).replaceAll('{database}', location.database),
  };
}

/**
 * The connection for `login`: its address (from the RDS API when the location
 * has no endpoint), checked against the destinations its credential is bound
 * to before the password is even read, and the environment's TLS settings.
 */
export async function resolveLogin(
  login: Login,
  sources: SecretSources,
  credentials: CredentialResolver,
  aws?: AwsClientFactory,
): Promise<PgConnection> {
  const { location, field } = login;
  const env = login.credentials.env;
  if (credentials.protected(env)) {
    if (location.host || location.endpointMap)
      throw invalidInput(`${field}.host`, `${env} is protected: database hosts come only from the RDS API (name the instance)`);
    if (location.tls === 'disable') throw invalidInput(`${field}.tls`, `${env} is protected, so database connections must be encrypted`);
  }
  const endpoint = location.endpoint ?? (await rdsEndpoint(location.instance, sources, aws, field));
  const emulated = !location.endpoint && credentials.emulatedRds(env);
  if (emulated) Object.assign(endpoint, emulated);
  const address = physicalAddress({ ...location, endpoint });
  const to: Destination = location.host
    ? { host: address.host, port: address.port }
    : { instance: location.instance, host: address.host, port: address.port };
  return {
    ...address,
    user: login.credentials.username,
    password: await credentials.password(login.credentials, to, sources, field),
    tls: location.tls === 'disable' ? { mode: 'disable' } : credentials.tls(env),
  };
}

/** An instance's endpoint as RDS reports it: on protected environments, the only source of database hosts. */
async function rdsEndpoint(instance: string, sources: SecretSources, aws: AwsClientFactory | undefined, field: string): Promise<Endpoint> {
  if (!aws) throw invalidInput(`${field}.instance`, 'this activity cannot look up RDS instances');
  let found;
  try {
    found = (await aws(sources.aws).rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance }), abortable()))
      .DBInstances?.[0];
  } catch (err) {
    if ((err as Error).name === 'DBInstanceNotFoundFault') throw invalidInput(`${field}.instance`, `no RDS instance ${instance}`);
    throw awsFailure(err, `describe RDS instance ${instance}`, `${field}.instance`);
  }
  const address = found?.Endpoint?.Address;
  if (!address)
    throw ApplicationFailure.create({
      type: 'DatabaseUnavailable',
      message: `RDS instance ${instance} has no endpoint yet (${found?.DBInstanceStatus ?? 'unknown status'})`,
    });
  return { host: address, port: found?.Endpoint?.Port ?? 5432 };
}

/** The same server's maintenance database, for creating or dropping the database itself. */
export function maintenanceDb(connection: PgConnection): PgConnection {
  return { ...connection, database: 'postgres' };
}

export interface PgErrorFields {
  /** Field blamed for a failed login (bad user or password). */
  credentials?: string;
  /** Field blamed for a missing database. */
  database?: string;
}

/** Runs `fn` on a fresh connection and always closes it; errors become failures (see `pgFailure`). */
export async function withPg<T>(
  connection: PgConnection,
  what: string,
  fn: (client: pg.Client) => Promise<T>,
  fields: PgErrorFields = {},
): Promise<T> {
  const where = `${what} (${connection.user}@${connection.host}:${connection.port}/${connection.database})`;
  let client: pg.Client | undefined;
  try {
    client = new pg.Client({
      host: connection.host,
      port: connection.port,
      database: connection.database,
      user: connection.user,
      password: passwordOnlyForScram(connection),
      ssl: await sslOptions(connection),
      application_name: 'runbook',
      connectionTimeoutMillis: 15_000,
    });
    refuseWeakChallenges(client);
    client.on('error', () => {}); // a connection dropped while idle must not crash the worker; the next query reports it
    await client.connect();
    return await fn(client);
  } catch (err) {
    throw pgFailure(err, where, fields, connection);
  } finally {
    await client?.end().catch(() => {});
  }
}

/**
 * What node-postgres gets for `ssl`: `verify-full` checks the chain against
 * the CA bundle (or the system's trust store) and the certificate's names
 * against the host we dialled (an IP is checked against IP names; the
 * driver would otherwise check an IP host against "localhost").
 */
async function sslOptions(connection: PgConnection): Promise<pg.ClientConfig['ssl']> {
  const { mode, ca } = connection.tls;
  if (mode === 'disable') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  let bundle: string | undefined;
  if (ca) {
    try {
      bundle = await readFile(ca, 'utf8');
    } catch (err) {
      throw ApplicationFailure.create({
        type: 'WorkerMisconfigured',
        message: `databaseTls.ca: cannot read CA bundle ${ca} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        nonRetryable: true,
      });
    }
  }
  return {
    rejectUnauthorized: true,
    ...(bundle ? { ca: bundle } : {}),
    ...(isIP(connection.host) ? {} : { servername: connection.host }),
    checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(connection.host, cert),
  };
}

/** The challenge the server sent, seen before the driver answers it. */
const WEAK_CHALLENGES = {
  authenticationCleartextPassword: 'a cleartext password',
  authenticationMD5Password: 'an MD5 password hash',
} as const;

/**
 * Notes a cleartext or MD5 challenge before the driver answers it (our
 * listeners are registered first, so they run first); `passwordOnlyForScram`
 * then refuses to hand over the password. SCRAM never sends it at all.
 */
function refuseWeakChallenges(client: pg.Client): void {
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  for (const [event, what] of Object.entries(WEAK_CHALLENGES)) {
    connection.on(event, () => {
      (client as unknown as { weakChallenge?: string }).weakChallenge = what;
    });
  }
}

/** node-postgres asks a password function only when the server challenges; it answers SCRAM, nothing weaker. */
function passwordOnlyForScram(connection: PgConnection): () => string {
  return function (this: unknown) {
    const self = this as { weakChallenge?: string } | undefined;
    if (self?.weakChallenge) throw new WeakAuthenticationError(connection, self.weakChallenge);
    return connection.password;
  };
}

export class WeakAuthenticationError extends Error {
  readonly code = 'WEAK_AUTHENTICATION';
  constructor(connection: PgConnection, what: string) {
    super(
      `${connection.host}:${connection.port} asked for ${what}; the worker sends passwords only by SCRAM-SHA-256 (set password_encryption = scram-sha-256 and scram-sha-256 in pg_hba.conf)`,
    );
  }
}

/**
 * Environment for pg_dump, pg_restore and psql: the connection as libpq
 * variables, so no password ever appears on a command line (visible in `ps`)
 * or in a connection URL. The worker's own PG* variables are dropped so they
 * cannot redirect the tools. `libpqMajor` is the tools' version: libpq 16+
 * refuses cleartext and MD5 itself (PGREQUIREAUTH); older tools rely on the
 * caller proving the login with `withPg` first (see `checkLoginBeforeTool`).
 */
export function pgChildEnv(connection: PgConnection, libpqMajor = 0): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
  const { mode, ca } = connection.tls;
  return {
    ...inherited,
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGDATABASE: connection.database,
    PGUSER: connection.user,
    PGPASSWORD: connection.password,
    PGSSLMODE: mode,
    ...(mode === 'verify-full' ? { PGSSLROOTCERT: ca ?? (libpqMajor >= 16 ? 'system' : SYSTEM_CA_FILE) } : {}),
    ...(libpqMajor >= 16 ? { PGREQUIREAUTH: 'scram-sha-256' } : {}),
    PGCONNECT_TIMEOUT: '15',
  };
}

/** Debian's (and OpenSSL's usual) system bundle: libpq before 16 has no `sslrootcert=system`. */
const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * Before a libpq program (older than 16, which cannot refuse weak challenges
 * itself) gets the password: the same login by node-postgres, which verifies
 * the server and refuses cleartext and MD5, so a server that would ask the
 * program for them is refused first.
 */
export async function checkLoginBeforeTool(connection: PgConnection, libpqMajor: number, what: string): Promise<void> {
  if (libpqMajor >= 16) return;
  await withPg(connection, `log in before ${what}`, async () => {});
}
/** Node's codes for a certificate chain or name that does not verify. */
const TLS_VERIFY_ERRORS =
  /^(ERR_TLS_CERT_ALTNAME_INVALID|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_(HAS_EXPIRED|NOT_YET_VALID|UNTRUSTED|REJECTED|SIGNATURE_FAILURE)|ERR_SSL_.*)$/;

const RETRYABLE_SQLSTATE_CLASSES = ['08', '53', '57', '40'];
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE']);

/**
 * A PostgreSQL error as Temporal should see it: unreachable servers and
 * connection-class SQLSTATEs are retried; a failed login or a missing
 * database is the operator's input when a field is named for it; anything
 * else is a statement that will fail the same way again.
 */
export function pgFailure(err: unknown, what: string, fields: PgErrorFields = {}, connection?: PgConnection): Error {
  if (err instanceof ApplicationFailure) return err;
  const error = err as { code?: string; message?: string };
  const message = `${what}: ${error.message ?? String(err)}`;
  const code = error.code ?? '';
  if (code === 'WEAK_AUTHENTICATION')
    return ApplicationFailure.create({ type: 'DatabaseAuthenticationRefused', message, nonRetryable: true });
  if (connection && TLS_VERIFY_ERRORS.test(code)) {
    const ca = connection.tls.ca ? `the CA bundle ${connection.tls.ca}` : "the system's trust store";
    return ApplicationFailure.create({
      type: 'DatabaseCertificateRejected',
      message: `${what}: the TLS certificate of ${connection.host}:${connection.port} does not verify against ${ca} (${code}: ${error.message}); refusing to send the password`,
      nonRetryable: true,
    });
  }
  if (/does not support SSL/i.test(error.message ?? ''))
    return ApplicationFailure.create({ type: 'DatabaseTlsUnavailable', message, nonRetryable: true });
  if (code === '28P01' || code === '28000') {
    if (fields.credentials) return invalidInput(fields.credentials, message);
    return ApplicationFailure.create({ type: 'DatabaseLoginFailed', message, nonRetryable: true });
  }
  if (code === '3D000') {
    if (fields.database) return invalidInput(fields.database, message);
    return ApplicationFailure.create({ type: 'DatabaseNotFound', message, nonRetryable: true });
  }
  if (UNREACHABLE.has(code) || /timeout|terminated/i.test(error.message ?? '')) {
    return ApplicationFailure.create({ type: 'DatabaseUnreachable', message, nonRetryable: false });
  }
  if (RETRYABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2)))
    return ApplicationFailure.create({ type: 'DatabaseUnavailable', message, nonRetryable: false });
  if (code === '42501') return ApplicationFailure.create({ type: 'DatabasePermissionDenied', message, nonRetryable: true });
  return ApplicationFailure.create({ type: 'DatabaseError', message, nonRetryable: true });
}

export const quoteIdent = pg.escapeIdentifier;
export const quoteLiteral = pg.escapeLiteral;

/** `schema.table`, each part quoted. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}
