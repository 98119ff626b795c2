/**
 * References to secrets, as the worker's environments file holds them (under
 * `credentials`, bound to destinations, and `terraform.credentials`): where a
 * password is, never the password. Inputs name credentials logically and never
 * carry a reference. Workers resolve them (src/activities/secrets.ts).
 *
 *   env:RUNBOOK_SECRET_APP_DB                    an environment variable of the worker (prefix: secretEnvPrefix)
 *   secretsmanager:<arn or name>[#jsonKey]       a Secrets Manager secret (a key of its JSON value)
 *   terraform-output:database_password           an output of the runbook's Terraform configuration
 *
 * Pure (no I/O): the config validates references with it when it loads.
 */
import { z } from 'zod';

export type SecretRef = string;

/** The prefix `env:` references are limited to unless an environment sets `secretEnvPrefix`. */
export const DEFAULT_SECRET_ENV_PREFIX = 'RUNBOOK_SECRET_';

export type ParsedSecretRef =
  | { kind: 'env'; name: string }
  | { kind: 'secretsmanager'; secretId: string; jsonKey?: string }
  | { kind: 'terraform-output'; name: string };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Secret names and ARNs: letters, digits and /_+=.@-: (ARNs add colons). */
const SECRET_ID = /^[A-Za-z0-9/_+=.@:-]+$/;
const JSON_KEY = /^[A-Za-z0-9_.-]+$/;
const OUTPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Parses a reference; throws an Error saying what is wrong with it (never echoing more than the reference). */
export function parseSecretRef(ref: string): ParsedSecretRef {
  const colon = ref.indexOf(':');
  const scheme = colon > 0 ? ref.slice(0, colon) : '';
  const rest = ref.slice(colon + 1);
  switch (scheme) {
    case 'env':
      if (!ENV_NAME.test(rest)) throw new Error('env: needs an environment variable name (letters, digits, _)');
      return { kind: 'env', name: rest };
    case 'secretsmanager': {
      const hash = rest.lastIndexOf('#');
      const secretId = hash >= 0 ? rest.slice(0, hash) : rest;
      const jsonKey = hash >= 0 ? rest.slice(hash + 1) : undefined;
      if (!SECRET_ID.test(secretId)) throw new Error('secretsmanager: needs a secret ARN or name');
      if (jsonKey !== undefined && !JSON_KEY.test(jsonKey))
        throw new Error("secretsmanager: the part after # must name a key of the secret's JSON value");
      return { kind: 'secretsmanager', secretId, ...(jsonKey !== undefined ? { jsonKey } : {}) };
    }
    case 'terraform-output':
      if (!OUTPUT_NAME.test(rest)) throw new Error('terraform-output: needs an output name');
      return { kind: 'terraform-output', name: rest };
    default:
      throw new Error(
        'expected a secret reference (env:NAME, secretsmanager:<arn>[#key] or terraform-output:<name>), never the secret itself',
      );
  }
}

/** A zod string that must be a secret reference. */
export const secretRefSchema = z.string().superRefine((ref, ctx) => {
  try {
    parseSecretRef(ref);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
  }
});
