/**
 * The last look before the old database is deleted (issue 11.2): the new one
 * still answers, and still holds what verification counted. The writers run
 * on it by then, so tables may have grown; a table that is gone or holds
 * fewer rows than were verified means something happened to the copy
 * (a restore over it, a truncate, the wrong instance), and the old instance,
 * the only other copy, must stay.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { quoteIdent, resolveLogin, withPg, type Login } from './pg-connect.js';
import type { CredentialResolver, SecretSources } from './secrets.js';

export interface VerifiedCounts {
  /** `schema.table` -> rows at verification. */
  tables: Record<string, number>;
}

export interface RecheckReport {
  tables: number;
  /** Rows now, summed over the verified tables. */
  rows: number;
  /** Rows at verification, summed. */
  verifiedRows: number;
}

const PROBLEMS_SHOWN = 5;

export function createRecheckActivities(credentials: CredentialResolver) {
  return {
    /** Throws `NewDatabaseChanged` (not retried) naming each table that is missing or shrank since verification. */
    async recheckNewDatabase(args: { login: Login; sources: SecretSources; verified: VerifiedCounts }): Promise<RecheckReport> {
      const connection = await resolveLogin(args.login, args.sources, credentials);
      const counted = await withPg(
        connection,
        `recount ${args.login.location.instance}`,
        async (client) => {
          const now: Record<string, number | null> = {};
          for (const table of Object.keys(args.verified.tables)) {
            const [schema, name] = splitTable(table);
            const {
              rows: [found],
            } = await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
              `${quoteIdent(schema)}.${quoteIdent(name)}`,
            ]);
            if (!found!.exists) {
              now[table] = null;
              continue;
            }
            const {
              rows: [count],
            } = await client.query<{ rows: string }>(`SELECT count(*)::text AS rows FROM ${quoteIdent(schema)}.${quoteIdent(name)}`);
            now[table] = Number(count!.rows);
          }
          return now;
        },
        { credentials: args.login.field },
      );
      const problems = Object.entries(args.verified.tables).flatMap(([table, verified]) => {
        const rows = counted[table];
        if (rows === null || rows === undefined) return [`${table} is gone (${verified} rows verified)`];
        return rows < verified ? [`${table} holds ${rows} rows, ${verified} were verified`] : [];
      });
      if (problems.length) {
        const more = problems.length > PROBLEMS_SHOWN ? `; and ${problems.length - PROBLEMS_SHOWN} more` : '';
        throw ApplicationFailure.create({
          type: 'NewDatabaseChanged',
          message: `${args.login.location.instance} no longer holds what was verified: ${problems.slice(0, PROBLEMS_SHOWN).join('; ')}${more}`,
          nonRetryable: true,
        });
      }
      const sum = (values: (number | null)[]) => values.reduce<number>((total, v) => total + (v ?? 0), 0);
      return {
        tables: Object.keys(counted).length,
        rows: sum(Object.values(counted)),
        verifiedRows: sum(Object.values(args.verified.tables)),
      };
    },
  };
}

export type RecheckActivities = ReturnType<typeof createRecheckActivities>;

/** `schema.table` as verification names it (postgres.ts tableName): split at the first dot. */
function splitTable(table: string): [string, string] {
  const dot = table.indexOf('.');
  return dot < 0 ? ['public', table] : [table.slice(0, dot), table.slice(dot + 1)];
}
