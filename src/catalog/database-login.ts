/**
 * A PostgreSQL login as runbooks take it: where the database is (an RDS
 * instance, or on unprotected environments a host) and the logical name of a
 * credential in the worker's config, never a password or a secret reference.
 * The credential must be bound to that destination (see src/credentials.ts).
 * Names that reach libpq must be plain names, so a value such as
 * `appdb host=elsewhere` cannot smuggle connection settings in.
 */
import { z } from 'zod';
import type { EnvironmentConfig } from '../config.js';
import { destinationProblem, findCredential } from '../credentials.js';
import type { Login } from '../activities/pg-connect.js';

const pgName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a PostgreSQL name: a letter or _, then letters, digits and _ (at most 63)');
export const credentialName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "a credential's name in the worker's config (lower-case letters, digits, _ and -)");

export const databaseLoginSchema = z
  .object({
    instance: z
      .string()
      .regex(/^[a-zA-Z][a-zA-Z0-9-]{0,62}$/, 'an RDS instance identifier')
      .optional()
      .describe('RDS instance identifier; its host comes from the RDS API (required on protected environments)'),
    host: z
      .string()
      .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$/, 'a host name or IPv4 address (letters, digits, dots and hyphens)')
      .optional()
      .describe('host name or address (unprotected environments only; else give instance)'),
    port: z.number().int().min(1).max(65_535).default(5432),
    database: pgName,
    username: pgName,
    credential: credentialName.describe(
      "logical name of the password in the worker's config (credentials:), bound to the hosts or instances it may be sent to",
    ),
    tls: z
      .boolean()
      .default(true)
      .describe("false: no TLS (unprotected environments only); true: the environment's databaseTls (verify-full by default)"),
  })
  .strict()
  .superRefine((login, ctx) => {
    if (Boolean(login.instance) === Boolean(login.host))
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['instance'], message: 'give exactly one of instance (an RDS instance) or host' });
  });

export type DatabaseLoginInput = z.infer<typeof databaseLoginSchema>;

/**
 * "field: rule" when the worker would refuse this login on `env`: protected
 * environments take hosts only from the RDS API and always encrypt, and the
 * credential must exist and be bound to the destination. Checked when the run
 * is resolved, so a dry run refuses too; the activity that connects checks again.
 */
export function databaseLoginProblem(login: DatabaseLoginInput, env: EnvironmentConfig, field = 'database'): string | null {
  if (env.protected && login.host)
    return `${field}.host: ${env.name} is protected, so database hosts come only from the RDS API; give ${field}.instance`;
  if (env.protected && !login.tls) return `${field}.tls: ${env.name} is protected, so database connections must be encrypted`;
  const credential = findCredential(env, login.credential, `${field}.credential`);
  if (typeof credential === 'string') return credential;
  const to = login.instance
    ? { instance: login.instance, host: login.instance, port: login.port }
    : { host: login.host!, port: login.port };
  if (credential.allowedInstances && !login.instance) return destinationProblem(credential, login.credential, to, `${field}.credential`);
  // An instance's host is known only from the RDS API: its binding is checked by instance here, by host and instance when connecting.
  return login.instance && credential.allowedHosts ? null : destinationProblem(credential, login.credential, to, `${field}.credential`);
}

/** What activities take: the location and the logical credential, with the field named for their errors. */
export function toLogin(login: DatabaseLoginInput, env: Pick<EnvironmentConfig, 'name'>, field = 'database'): Login {
  const location = login.instance
    ? { instance: login.instance, database: login.database, tls: login.tls ? ('require' as const) : ('disable' as const) }
    : {
        instance: login.host!,
        host: true,
        endpoint: { host: login.host!, port: login.port },
        database: login.database,
        tls: login.tls ? ('require' as const) : ('disable' as const),
      };
  return { field, location, credentials: { env: env.name, username: login.username, credential: login.credential } };
}
