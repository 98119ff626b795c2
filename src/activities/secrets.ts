/**
 * Resolving secret references (src/secret-refs.ts) on the worker, and the
 * credentials inputs name logically, each only for a destination the worker's
 * own environments file binds it to. Values stay inside the activity that
 * needs them: nothing here returns a secret to a workflow, and no error
 * message carries one.
 */
import { GetSecretValueCommand, type GetSecretValueCommandOutput, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { execa } from 'execa';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { databaseTls, envRefProblem, type AwsConnection, type EnvironmentConfig, type RunbooksConfig, type TlsMode } from '../config.js';
import { destinationProblem, findCredential, type Destination } from '../credentials.js';
import { DEFAULT_SECRET_ENV_PREFIX, parseSecretRef, type SecretRef } from '../secret-refs.js';
import { abortable, awsFailure, invalidInput } from './aws.js';
import { extraAwsClients, type ExtraAwsClientFactory } from './aws-extra-clients.js';
import { resolveTerraform } from './terraform.js';

const projectToolsDir = fileURLToPath(new URL('../../../.tools', import.meta.url));

/** Where references are looked up. */
export interface SecretSources {
  aws: AwsConnection;
  /** Where `terraform-output:` references are read (Terraform provisioning only). */
  terraform?: { dir: string; workspace: string };
}

/** Reads one Terraform output's value; undefined when the configuration has no such output. */
export type TerraformOutputReader = (dir: string, workspace: string, name: string) => Promise<unknown>;

export interface SecretDeps {
  awsExtra?: ExtraAwsClientFactory;
  terraformOutput?: TerraformOutputReader;
  /** Only `env:` variables with this prefix are read (default RUNBOOK_SECRET_). */
  envPrefix?: string;
}

/** Resolves `ref`; bad or unresolvable references are the operator's input, so they fail as `InvalidInput` naming `field`. */
export type SecretResolver = (ref: SecretRef, sources: SecretSources, field: string) => Promise<string>;

export function createSecretResolver(deps: SecretDeps = {}): SecretResolver {
  const clients = deps.awsExtra ?? extraAwsClients;
  const readOutput = deps.terraformOutput ?? readTerraformOutput;

  return async (ref, sources, field) => {
    let parsed;
    try {
      parsed = parseSecretRef(ref);
    } catch (err) {
      throw invalidInput(field, (err as Error).message);
    }
    switch (parsed.kind) {
      case 'env': {
        const problem = envRefProblem(ref, deps.envPrefix ?? DEFAULT_SECRET_ENV_PREFIX);
        if (problem) throw invalidInput(field, problem);
        const value = process.env[parsed.name];
        if (!value) throw invalidInput(field, `environment variable ${parsed.name} is not set for the worker on ${hostname()}`);
        return value;
      }
      case 'secretsmanager': {
        const answer = await readSecret(clients(sources.aws).secretsManager, parsed.secretId, field);
        const text = answer.SecretString;
        if (text === undefined) throw invalidInput(field, `secret ${parsed.secretId} holds binary data, not text`);
        return parsed.jsonKey === undefined ? text : jsonField(text, parsed.jsonKey, `secret ${parsed.secretId}`, field);
      }
      case 'terraform-output': {
        if (!sources.terraform)
          throw invalidInput(field, 'terraform-output: references need provisioning.mode terraform (a Terraform dir to read them from)');
        const value = await readOutput(sources.terraform.dir, sources.terraform.workspace, parsed.name);
        if (value === undefined || value === null || value === '')
          throw invalidInput(field, `Terraform has no output ${parsed.name} in workspace ${sources.terraform.workspace}`);
        if (typeof value !== 'string' && typeof value !== 'number')
          throw invalidInput(field, `Terraform output ${parsed.name} is not a string`);
        return String(value);
      }
    }
  };
}

async function readSecret(secretsManager: SecretsManagerClient, secretId: string, field: string): Promise<GetSecretValueCommandOutput> {
  try {
    return await secretsManager.send(new GetSecretValueCommand({ SecretId: secretId }), abortable());
  } catch (err) {
    if ((err as Error).name === 'ResourceNotFoundException') throw invalidInput(field, `no secret ${secretId}`);
    throw awsFailure(err, `read secret ${secretId}`, field);
  }
}

/** One key of a JSON secret (RDS-managed secrets hold {"username", "password"}). */
function jsonField(text: string, key: string, what: string, field: string): string {
  let value: unknown;
  try {
    value = (JSON.parse(text) as Record<string, unknown>)[key];
  } catch {
    throw invalidInput(field, `${what} is not JSON, so it has no key '${key}'`);
  }
  if (typeof value !== 'string' || !value) throw invalidInput(field, `${what} has no text under key '${key}'`);
  return value;
}

/**
 * `terraform output -json <name>` in the configuration's folder and workspace,
 * with the binary terraform.ts finds. Its `terraformOutputs` activity leaves
 * sensitive outputs to the activities that need them: this is that reader.
 */
export const readTerraformOutput: TerraformOutputReader = async (dir, workspace, name) => {
  const result = await execa(await resolveTerraform(projectToolsDir), ['output', '-no-color', '-json', name], {
    cwd: dir,
    env: { TF_WORKSPACE: workspace, TF_IN_AUTOMATION: '1' },
    reject: false,
  });
  // The value is secret: only Terraform's own error text (which never holds output values) is reported.
  if (result.exitCode !== 0) {
    if (/Output ".*" not found/i.test(result.stderr)) return undefined;
    throw new Error(`terraform output ${name} failed in ${dir} (workspace ${workspace}): ${result.stderr.slice(0, 500)}`);
  }
  return JSON.parse(result.stdout) as unknown;
};

/** A login as runbook parameters carry it: the environment, the user, and the credential's logical name. */
export interface Credentials {
  env: string;
  username: string;
  /** A name under the environment's `credentials` in the worker's config; never a reference or a password. */
  credential: string;
}

/** TLS as a connection uses it: the mode and the CA bundle file for `verify-full` (unset: the system's trust store). */
export interface TlsSettings {
  mode: TlsMode;
  ca?: string;
}

/**
 * The worker's credentials: a password only for a destination its own config
 * allows, and the TLS rules of each environment. Built from the worker's
 * environments file, never from anything a run carries.
 */
export interface CredentialResolver {
  /** The password of `credentials`, to be sent to `to`; refused (InvalidInput naming `field`) unless the config binds it there. */
  password(credentials: Credentials, to: Destination, sources: SecretSources, field: string): Promise<string>;
  /** Refuses (InvalidInput naming `field`) unless `credentials` may go to `to`; resolves nothing. */
  allowed(credentials: Credentials, to: Destination, field: string): void;
  /** Whether the credential's secret comes from Terraform (so it exists only once the run's Terraform has run). */
  fromTerraform(credentials: Credentials, field: string): boolean;
  /** The environment's database TLS settings. */
  tls(env: string): TlsSettings;
  /** Whether the environment is protected (where hosts come only from the RDS API). */
  protected(env: string): boolean;
  /** Where an emulated environment's RDS instances really are (`emulatedRds`), if set. */
  emulatedRds(env: string): { host: string; port: number } | undefined;
}

export function createCredentialResolver(deps: SecretDeps & { environments?: RunbooksConfig } = {}): CredentialResolver {
  const environment = (name: string, field: string): EnvironmentConfig => {
    const config = deps.environments;
    if (!config) throw invalidInput(field, 'this worker was started without an environments config, so it sends no credentials');
    const env = Object.hasOwn(config.environments, name) ? config.environments[name] : undefined;
    if (!env) throw invalidInput(field, `no environment '${name}' in this worker's config`);
    return { ...env, name };
  };
  const binding = (credentials: Credentials, to: Destination | undefined, field: string) => {
    const env = environment(credentials.env, field);
    const found = findCredential(env, credentials.credential, `${field}.credential`);
    if (typeof found === 'string') throw invalidInput(`${field}.credential`, found.slice(found.indexOf(': ') + 2));
    if (to) {
      const problem = destinationProblem(found, credentials.credential, to, `${field}.credential`);
      if (problem) throw invalidInput(`${field}.credential`, problem.slice(problem.indexOf(': ') + 2));
    }
    return { env, credential: found };
  };
  return {
    async password(credentials, to, sources, field) {
      const { env, credential } = binding(credentials, to, field);
      return createSecretResolver({ ...deps, envPrefix: env.secretEnvPrefix })(credential.ref, sources, `${field}.credential`);
    },
    allowed(credentials, to, field) {
      binding(credentials, to, field);
    },
    fromTerraform(credentials, field) {
      return binding(credentials, undefined, field).credential.ref.startsWith('terraform-output:');
    },
    tls(env) {
      return databaseTls(deps.environments ?? {}, environment(env, 'tls'));
    },
    protected(env) {
      return environment(env, 'env').protected;
    },
    emulatedRds(env) {
      return environment(env, 'env').emulatedRds;
    },
  };
}

/** One credential a run will send, and where (checked in preflight, before anything changes). */
export interface CredentialUse {
  field: string;
  credentials: Credentials;
  to: Destination;
  /** Set for the new instance's credentials when the run's own Terraform makes their secret: checked for the destination only. */
  madeByRun?: boolean;
}

/** The activity preflight calls (named for the references it once checked: runs' histories name it): each credential may go where the run sends it, and resolves; nothing about the values leaves the worker. */
export function createSecretActivities(credentials: CredentialResolver) {
  return {
    async checkSecretRefs(args: { sources: SecretSources; uses: CredentialUse[] }): Promise<{ checked: string[] }> {
      for (const use of args.uses) {
        credentials.allowed(use.credentials, use.to, use.field);
        if (use.madeByRun && credentials.fromTerraform(use.credentials, use.field)) continue;
        await credentials.password(use.credentials, use.to, args.sources, use.field);
      }
      return { checked: args.uses.map((u) => u.field) };
    },
  };
}
