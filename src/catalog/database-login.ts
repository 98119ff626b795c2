/**
 * A PostgreSQL login as runbooks take it: where the database is and a secret
 * reference for the password, never the password. Names that reach libpq must
 * be plain names, so a value such as `appdb host=elsewhere` cannot smuggle
 * connection settings in.
 */
import { z } from 'zod';
import type { EnvironmentConfig } from '../config.js';
import { secretRefSchema } from '../secret-refs.js';
import type { Login } from '../activities/pg-connect.js';

const pgName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a PostgreSQL name: a letter or _, then letters, digits and _ (at most 63)');

export const databaseLoginSchema = z
  .object({
    host: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$/, 'a host name or IPv4 address (letters, digits, dots and hyphens)'),
    port: z.number().int().min(1).max(65_535).default(5432),
    database: pgName,
    username: pgName,
    password: secretRefSchema.describe('secret reference (env:, secretsmanager:, terraform-output:), never the password'),
    tls: z.boolean().default(true),
  })
  .strict();

export type DatabaseLoginInput = z.infer<typeof databaseLoginSchema>;

/** A protected environment's connections are encrypted; "field: rule" when refused. */
export function databaseLoginProblem(login: DatabaseLoginInput, env: EnvironmentConfig, field = 'database'): string | null {
  return env.protected && !login.tls ? `${field}.tls: ${env.name} is protected, so database connections must be encrypted` : null;
}

/** What activities take: the location and the credentials' reference, with the field named for their errors. */
export function toLogin(login: DatabaseLoginInput, field = 'database'): Login {
  return {
    field,
    location: { instance: login.host, endpoint: { host: login.host, port: login.port }, database: login.database, tls: login.tls ? 'require' : 'disable' },
    credentials: { username: login.username, password: login.password },
  };
}
