/**
 * Reaching a database that an RDS instance holds: where it really is (RDS's
 * endpoint, or the sandbox's mapping of it), logging in with credentials
 * resolved on the worker, and turning PostgreSQL errors into Temporal failures.
 * Resolved connections never leave the activity that made them.
 */
import { ApplicationFailure } from '@temporalio/activity';
import pg from 'pg';
import type { SecretRef } from '../secret-refs.js';
import { invalidInput } from './aws.js';
import type { SecretResolver, SecretSources } from './secrets.js';

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
  instance: string;
  endpoint: Endpoint;
  database: string;
  /** `require` encrypts (as RDS expects); `disable` only for local servers. */
  tls: 'require' | 'disable';
  endpointMap?: EndpointMap;
}

export interface Credentials {
  username: string;
  password: SecretRef;
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
  tls: boolean;
}

/** Where the database really is: RDS's endpoint, or its mapping onto the emulator's server. */
export function physicalAddress(location: DatabaseLocation): { host: string; port: number; database: string } {
  const map = location.endpointMap;
  if (!map) return { ...location.endpoint, database: location.database };
  return {
    host: map.host,
    port: map.port,
    database: map.database.replaceAll('{instance}', location.instance).replaceAll('{database}', location.database),
  };
}

export async function resolveLogin(login: Login, sources: SecretSources, resolveSecret: SecretResolver): Promise<PgConnection> {
  const address = physicalAddress(login.location);
  return {
    ...address,
    user: login.credentials.username,
    password: await resolveSecret(login.credentials.password, sources, `${login.field}.password`),
    tls: login.location.tls === 'require',
  };
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
export async function withPg<T>(connection: PgConnection, what: string, fn: (client: pg.Client) => Promise<T>, fields: PgErrorFields = {}): Promise<T> {
  const client = new pg.Client({
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    password: connection.password,
    // RDS presents Amazon's CA; verifying it needs the RDS bundle, so the channel is encrypted without pinning it.
    ssl: connection.tls ? { rejectUnauthorized: false } : false,
    application_name: 'runbook db-migration',
    connectionTimeoutMillis: 15_000,
  });
  client.on('error', () => {}); // a connection dropped while idle must not crash the worker; the next query reports it
  try {
    await client.connect();
    return await fn(client);
  } catch (err) {
    throw pgFailure(err, `${what} (${connection.user}@${connection.host}:${connection.port}/${connection.database})`, fields);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Environment for pg_dump, pg_restore and psql: the connection as libpq
 * variables, so no password ever appears on a command line (visible in `ps`)
 * or in a connection URL. The worker's own PG* variables are dropped so they
 * cannot redirect the tools.
 */
export function pgChildEnv(connection: PgConnection): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
  return {
    ...inherited,
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGDATABASE: connection.database,
    PGUSER: connection.user,
    PGPASSWORD: connection.password,
    PGSSLMODE: connection.tls ? 'require' : 'disable',
    PGCONNECT_TIMEOUT: '15',
  };
}

const RETRYABLE_SQLSTATE_CLASSES = ['08', '53', '57', '40'];
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE']);

/**
 * A PostgreSQL error as Temporal should see it: unreachable servers and
 * connection-class SQLSTATEs are retried; a failed login or a missing
 * database is the operator's input when a field is named for it; anything
 * else is a statement that will fail the same way again.
 */
export function pgFailure(err: unknown, what: string, fields: PgErrorFields = {}): Error {
  if (err instanceof ApplicationFailure) return err;
  const error = err as { code?: string; message?: string };
  const message = `${what}: ${error.message ?? String(err)}`;
  const code = error.code ?? '';
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
  if (RETRYABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return ApplicationFailure.create({ type: 'DatabaseUnavailable', message, nonRetryable: false });
  if (code === '42501') return ApplicationFailure.create({ type: 'DatabasePermissionDenied', message, nonRetryable: true });
  return ApplicationFailure.create({ type: 'DatabaseError', message, nonRetryable: true });
}

export const quoteIdent = pg.escapeIdentifier;
export const quoteLiteral = pg.escapeLiteral;

/** `schema.table`, each part quoted. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}
