/**
 * Resolving secret references (src/secret-refs.ts) on the worker. Values stay
 * inside the activity that needs them: nothing here returns a secret to a
 * workflow, and no error message carries one.
 */
import { GetSecretValueCommand, type GetSecretValueCommandOutput, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { execa } from 'execa';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { AwsConnection } from '../config.js';
import { parseSecretRef, type SecretRef } from '../secret-refs.js';
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
        if (!sources.terraform) throw invalidInput(field, 'terraform-output: references need provisioning.mode terraform (a Terraform dir to read them from)');
        const value = await readOutput(sources.terraform.dir, sources.terraform.workspace, parsed.name);
        if (value === undefined || value === null || value === '') throw invalidInput(field, `Terraform has no output ${parsed.name} in workspace ${sources.terraform.workspace}`);
        if (typeof value !== 'string' && typeof value !== 'number') throw invalidInput(field, `Terraform output ${parsed.name} is not a string`);
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

/** The activity preflight calls: every reference resolves, and nothing about the values leaves the worker. */
export function createSecretActivities(resolve: SecretResolver) {
  return {
    async checkSecretRefs(args: { sources: SecretSources; refs: { field: string; ref: SecretRef }[] }): Promise<{ checked: string[] }> {
      for (const { field, ref } of args.refs) await resolve(ref, args.sources, field);
      return { checked: args.refs.map((r) => r.field) };
    },
  };
}
