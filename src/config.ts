/**
 * The environments file: which environments exist, where their AWS and
 * databases are, who approves, and the default inputs of each runbook there.
 * Validated on load; every error names the field.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { durationSchema } from './duration.js';
import { DEFAULT_SECRET_ENV_PREFIX, parseSecretRef, secretRefSchema } from './secret-refs.js';
import type { RunPolicy } from './messages.js';
import { loadAllowedSigners, SignersFileError, type AllowedSigner } from './signing/allowed-signers.js';

const duration = durationSchema;

const awsSchema = z
  .object({
    region: z.string().min(1),
    /** Set for emulators (moto) or VPC endpoints; unset for real AWS. */
    endpoint: z.string().url().optional(),
    /** Named profile from ~/.aws; unset uses the default credential chain. */
    profile: z.string().min(1).optional(),
  })
  .strict();

const approvalsSchema = z
  .object({
    approvers: z.array(z.string().min(1)).min(1).default(['*']),
    allowSelfApproval: z.boolean().default(false),
    timeout: duration.default('24h'),
    timeouts: z.record(duration).default({}),
    webhook: z.string().url().optional(),
    /**
     * An OpenSSH allowed-signers file (relative to this config file): where set,
     * starts and decisions must be signed (`ssh-keygen -Y sign -n temporal-runbooks`)
     * and the verified principal is the identity.
     */
    signers: z.string().min(1).optional(),
  })
  .strict();

/**
 * Terraform on this environment's workers. `dirs` is the allowlist runbooks
 * pick a directory from by name (never a free path); `credentials` names the
 * secrets Terraform variables may take, by logical name.
 */
const terraformSchema = z
  .object({
    dirs: z.record(z.string().regex(/^\//, 'must be an absolute path on the worker')).default({}),
    /** A Terraform CLI configuration (TF_CLI_CONFIG_FILE) for runs here, e.g. a provider mirror. */
    cliConfig: z.string().regex(/^\//, 'must be an absolute path on the worker').optional(),
    /** Logical credential name -> secret reference (env:NAME, secretsmanager:<arn>[#key]). */
    credentials: z.record(secretRefSchema).default({}),
  })
  .strict();

/** What a run tells the people around it; see `notifyRun` in activities/notify.ts. */
export const RUN_EVENTS = [
  'started',
  'waiting',
  'reminder',
  'decided',
  'succeeded',
  'failed',
  'rolled-back',
  'cancelled',
  'frozen',
] as const;

/**
 * A receiver of run events. Its URL is a secret for most receivers (a Slack
 * webhook URL is a credential): it stays in the worker's config, or behind an
 * `env:` reference, and never reaches workflow history.
 */
const webhookSchema = z
  .object({
    url: z.union([z.string().url(), z.string().regex(/^env:[A-Za-z_][A-Za-z0-9_]*$/, 'a URL or env:VARIABLE')]),
    /** `slack`: `text` plus Block Kit `blocks`; `json`: the event as plain JSON. */
    format: z.enum(['slack', 'json']).default('json'),
  })
  .strict();

const notifyRouteSchema = z
  .object({
    webhook: z.string().min(1),
    events: z
      .array(z.enum(RUN_EVENTS))
      .min(1)
      .default([...RUN_EVENTS]),
  })
  .strict();

/** What a protected environment allows at most; the worker refuses inputs beyond it. */
const protectionSchema = z
  .object({
    /** Narrowest CIDR prefix a temporary database opening may have (24: at most a /24). */
    minCidrPrefix: z.number().int().min(8).max(32).default(24),
  })
  .strict();

/** A host name, an IPv4 address, or either with `:port`; `*` stands for one DNS label (`*.rds.amazonaws.com`). */
const hostPattern = z
  .string()
  .regex(
    /^(\*|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.(\*|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*(:\d{1,5})?$/,
    'a host name or IPv4 address, optionally with :port; * stands for one name label',
  );
/** An RDS instance identifier; a trailing `*` allows every identifier with that prefix (instances a run creates). */
const instancePattern = z
  .string()
  .regex(/^[a-zA-Z][a-zA-Z0-9-]{0,62}\*?$|^\*$/, 'an RDS instance identifier, optionally ending in * (a prefix)');

/**
 * A credential by logical name: where its secret is and the only places it may
 * be sent. Inputs name the credential, never its reference; the activity that
 * connects checks the destination against this list before the password leaves
 * the worker. `allowedInstances` binds it to RDS instances (the host then comes
 * from the RDS API), `allowedHosts` to host names (unprotected environments).
 */
const credentialSchema = z
  .object({
    ref: secretRefSchema,
    allowedHosts: z.array(hostPattern).min(1).optional(),
    allowedInstances: z.array(instancePattern).min(1).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (Boolean(c.allowedHosts) === Boolean(c.allowedInstances)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: 'needs exactly one of allowedHosts or allowedInstances: where this credential may be sent',
      });
    }
  });

export const TLS_MODES = ['verify-full', 'require', 'disable'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/**
 * How database connections are secured, libpq's sslmode names: `verify-full`
 * checks the server's certificate against `ca` (a PEM bundle on the worker;
 * default the config's `rdsCaBundle`, else the system's trust store) and its
 * name against the host; `require` encrypts without checking who answers;
 * `disable` is cleartext, for local servers only.
 */
const databaseTlsSchema = z
  .object({
    mode: z.enum(TLS_MODES).default('verify-full'),
    ca: z.string().regex(/^\//, 'must be an absolute path on the worker').optional(),
  })
  .strict();

const environmentSchema = z
  .object({
    description: z.string().optional(),
    /**
     * Production-like: approval needs named approvers other than the requester,
     * and risky modes (db-uri region updates, unencrypted database connections,
     * wide temporary access, emulated endpoints) are refused.
     */
    protected: z.boolean().default(false),
    protection: protectionSchema.default({}),
    aws: awsSchema,
    approvals: approvalsSchema.default({}),
    /** Which webhooks (named under `webhooks:`) hear which events of runs here. */
    notify: z.array(notifyRouteSchema).default([]),
    terraform: terraformSchema.optional(),
    /** Logical credential name -> its secret and where it may be sent (see credentialSchema). */
    credentials: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, _ and -'), credentialSchema)
      .default({}),
    /** The only environment variables `env:` references may read: names starting with this prefix. */
    secretEnvPrefix: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]{2,}$/, 'an upper-case variable-name prefix such as RUNBOOK_SECRET_')
      .default(DEFAULT_SECRET_ENV_PREFIX),
    databaseTls: databaseTlsSchema.default({}),
    /**
     * Emulated environments only (aws.endpoint set): the emulator's RDS
     * endpoints lead nowhere, so connections to an instance go to this local
     * server instead, after the RDS API confirmed the instance.
     */
    emulatedRds: z
      .object({ host: z.string().min(1), port: z.number().int().min(1).max(65_535) })
      .strict()
      .optional(),
    /** Default inputs per runbook; validated against each runbook's inputs when a run starts. */
    runbooks: z.record(z.record(z.unknown())).default({}),
  })
  .strict();

const configSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().optional(),
        namespace: z.string().optional(),
        uiUrl: z.string().url().optional(),
        /** The Temporal client config profile (TOML, as the `temporal` CLI reads it) for TLS, mTLS and API keys; TEMPORAL_PROFILE wins. */
        profile: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    /** Modules that add runbooks (see README, "Adding a runbook"). */
    plugins: z.array(z.string()).default([]),
    /** The AWS RDS global CA bundle on workers (global-bundle.pem): the default `databaseTls.ca` of every environment. */
    rdsCaBundle: z.string().regex(/^\//, 'must be an absolute path on the worker').optional(),
    webhooks: z.record(webhookSchema).default({}),
    environments: z
      .record(environmentSchema)
      .refine((envs) => Object.keys(envs).length > 0, 'needs at least one environment')
      .superRefine((envs, ctx) => {
        for (const [name, env] of Object.entries(envs)) {
          if (!env.protected) continue;
          if (env.approvals.approvers.some((a) => a.trim() === '*')) {
            ctx.addIssue({
              code: z.ZodIssueCode.custom,
              path: [name, 'approvals', 'approvers'],
              message: "a protected environment needs named approvers, not '*'",
            });
          }
          if (env.databaseTls.mode === 'disable') {
            ctx.addIssue({
              code: z.ZodIssueCode.custom,
              path: [name, 'databaseTls', 'mode'],
              message: 'disable is not allowed on a protected environment: database connections must be encrypted',
            });
          }
          if (env.approvals.allowSelfApproval) {
            ctx.addIssue({
              code: z.ZodIssueCode.custom,
              path: [name, 'approvals', 'allowSelfApproval'],
              message: 'must be false on a protected environment: approval needs a second person',
            });
          }
        }
      }),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [name, env] of Object.entries(config.environments)) {
      const refs: [(string | number)[], string][] = [
        ...Object.entries(env.credentials).map(([key, c]): [(string | number)[], string] => [['credentials', key, 'ref'], c.ref]),
        ...Object.entries(env.terraform?.credentials ?? {}).map(([key, ref]): [(string | number)[], string] => [
          ['terraform', 'credentials', key],
          ref,
        ]),
      ];
      for (const [path, ref] of refs) {
        const problem = envRefProblem(ref, env.secretEnvPrefix);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['environments', name, ...path], message: problem });
      }
      if (env.emulatedRds && !env.aws.endpoint) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['environments', name, 'emulatedRds'],
          message: 'only for emulated environments (aws.endpoint set); real RDS endpoints are reached directly',
        });
      }
      env.notify.forEach((route, i) => {
        if (!Object.hasOwn(config.webhooks, route.webhook)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['environments', name, 'notify', i, 'webhook'],
            message: `no webhook named '${route.webhook}' under webhooks (known: ${Object.keys(config.webhooks).join(', ') || 'none'})`,
          });
        }
      });
    }
  });

export type RunbooksConfig = z.infer<typeof configSchema> & {
  path: string;
  /** The allowed signers of each `approvals.signers` file, by absolute path (read and checked when the config loads). */
  signers: Record<string, AllowedSigner[]>;
};
export type EnvironmentConfig = z.infer<typeof environmentSchema> & { name: string };
export type AwsConnection = z.infer<typeof awsSchema>;
export type TerraformConfig = z.infer<typeof terraformSchema>;
export type CredentialConfig = z.infer<typeof credentialSchema>;

export class ConfigError extends Error {}

/** `env:` references may only read variables meant for them, so an input can never make a worker send e.g. its AWS key. */
export function envRefProblem(ref: string, prefix: string): string | null {
  let parsed;
  try {
    parsed = parseSecretRef(ref);
  } catch {
    return null; // the reference's own schema reports it
  }
  return parsed.kind === 'env' && !parsed.name.startsWith(prefix)
    ? `env:${parsed.name}: env: references must name a variable starting with ${prefix} (secretEnvPrefix)`
    : null;
}

/** The TLS settings database connections on this environment use: its own, with the RDS bundle as the default CA. */
export function databaseTls(config: Pick<RunbooksConfig, 'rdsCaBundle'>, env: EnvironmentConfig): { mode: TlsMode; ca?: string } {
  const ca = env.databaseTls.ca ?? config.rdsCaBundle;
  return { mode: env.databaseTls.mode, ...(ca && env.databaseTls.mode === 'verify-full' ? { ca } : {}) };
}

/**
 * The worker reads the CA bundles its environments name when it starts, so a
 * missing or malformed bundle is a config error naming the file and field
 * (not a failed run later). The CLI does not need these files.
 */
export function checkWorkerFiles(config: RunbooksConfig): void {
  const bundles: [string, string][] = [];
  if (config.rdsCaBundle) bundles.push(['rdsCaBundle', config.rdsCaBundle]);
  for (const [name, env] of Object.entries(config.environments)) {
    if (env.databaseTls.ca) bundles.push([`environments.${name}.databaseTls.ca`, env.databaseTls.ca]);
  }
  for (const [field, file] of bundles) {
    const problem = caBundleProblem(file);
    if (problem) throw new ConfigError(`config ${config.path}: ${field}: CA bundle ${file} ${problem}`);
  }
}

/** Why a PEM CA bundle is unusable, or null. Each certificate must parse; line numbers point at the bad one. */
export function caBundleProblem(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (const block of blocks) {
    try {
      new X509Certificate(block[0]);
    } catch (err) {
      const line = text.slice(0, block.index).split('\n').length;
      return `line ${line}: not a valid certificate (${(err as Error).message})`;
    }
  }
  return null;
}

/**
 * Where the config comes from when no --config is given: RUNBOOK_CONFIG; else,
 * while `runbook dev` runs here, the config it wrote (the sandbox plus
 * ./runbooks.config.yaml); else ./runbooks.config.yaml.
 */
export function defaultConfigPath(cwd = process.cwd()): string | undefined {
  if (process.env.RUNBOOK_CONFIG) return process.env.RUNBOOK_CONFIG;
  if (existsSync(resolve(cwd, '.runbook/dev.json'))) return resolve(cwd, '.runbook/config.yaml');
  const own = resolve(cwd, 'runbooks.config.yaml');
  return existsSync(own) ? own : undefined;
}

export function loadConfig(path: string | undefined): RunbooksConfig {
  if (!path) {
    throw new ConfigError(
      'no environments config: pass --config, set RUNBOOK_CONFIG, add runbooks.config.yaml, or run `runbook dev` for the sandbox',
    );
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, path = '<config>'): RunbooksConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config ${path} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`config ${path}: ${formatIssues(parsed.error)}`);
  return { ...parsed.data, path: resolve(path), signers: loadSigners(parsed.data.environments, path) };
}

/** Reads each environment's signers file (made absolute in place), so a bad one stops the load with its file and line. */
function loadSigners(environments: z.infer<typeof configSchema>['environments'], configPath: string): Record<string, AllowedSigner[]> {
  const signers: Record<string, AllowedSigner[]> = {};
  const base = configPath.startsWith('<') ? process.cwd() : dirname(resolve(configPath));
  for (const [name, env] of Object.entries(environments)) {
    if (!env.approvals.signers) continue;
    const file = resolve(base, env.approvals.signers);
    env.approvals.signers = file;
    try {
      signers[file] ??= loadAllowedSigners(file);
    } catch (err) {
      if (err instanceof SignersFileError)
        throw new ConfigError(`config ${configPath}: environments.${name}.approvals.signers: ${err.message}`);
      throw err;
    }
  }
  return signers;
}

/** The allowed signers of this environment, or undefined where starts and decisions are not signed. */
export function environmentSigners(config: RunbooksConfig, env: EnvironmentConfig): AllowedSigner[] | undefined {
  return env.approvals.signers ? config.signers[env.approvals.signers] : undefined;
}

export function environment(config: RunbooksConfig, name: string): EnvironmentConfig {
  const env = Object.hasOwn(config.environments, name) ? config.environments[name] : undefined;
  if (!env) {
    throw new ConfigError(`unknown environment '${name}' (known in ${config.path}: ${Object.keys(config.environments).join(', ')})`);
  }
  return { ...env, name };
}

/** The approval rules a run on this environment follows; identities normalised (trimmed, lower case). */
export function runPolicy(env: EnvironmentConfig): RunPolicy {
  const { approvers, allowSelfApproval, timeout, timeouts, webhook } = env.approvals;
  return {
    approvers: approvers.map((a) => a.trim().toLowerCase()),
    allowSelfApproval: env.protected ? false : allowSelfApproval,
    protected: env.protected,
    ...(env.approvals.signers ? { signed: true } : {}),
    timeoutMs: timeout,
    timeoutsMs: timeouts,
    notify: Boolean(webhook) || env.notify.length > 0,
    notifications: [
      ...(webhook ? [{ webhook: LEGACY_APPROVALS_WEBHOOK, events: ['waiting' as const] }] : []),
      ...env.notify.map((route) => ({ webhook: route.webhook, events: [...route.events] })),
    ],
  };
}

/** `approvals.webhook` (a URL) predates named webhooks: it hears waiting checkpoints, as plain JSON. */
export const LEGACY_APPROVALS_WEBHOOK = 'approvals.webhook';

/** A fingerprint of the environment's entry, recorded with each run: two runs with one hash ran under one config. */
export function environmentHash(env: EnvironmentConfig): string {
  return createHash('sha256').update(canonicalJson(env)).digest('hex');
}

/** Deterministic JSON: keys sorted, no whitespace, undefined fields left out (also what signers sign, see signing/canonical.ts). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** "environments.prod.aws.region: Required; plugins.0: Expected string" */
export function formatIssues(error: z.ZodError, prefix: (string | number)[] = []): string {
  return error.issues
    .map((issue) => {
      const path = [...prefix, ...issue.path].join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
