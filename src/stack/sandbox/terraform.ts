/**
 * The sandbox's Terraform directory for `terraform-apply`: a small
 * configuration of S3 buckets whose provider is the real `hashicorp/aws` from
 * the machine's provider mirror, pointed at moto, with the workspaces
 * `staging` and `production` (seed 002's names) and nothing applied yet, so
 * the first run plans real resources and waits at `review`.
 *
 * Where no mirror is found, the same configuration is written with
 * `terraform_data` stand-ins and a line says so: the runbook then still
 * plans, reviews and applies, but creates nothing in moto.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { execa } from 'execa';
import { resolveTerraform } from '../../activities/terraform.js';
import type { TerraformApplyInputs } from '../../catalog/terraform-apply.js';
import type { TerraformConfig } from '../../config.js';
import { defaultToolsDir } from '../index.js';
import { MOTO_AWS_ENV } from '../moto.js';
import { findProviderMirror, motoProviderConfig, writeCliConfig } from '../terraform.js';

export const SANDBOX_WORKSPACES = ['staging', 'production'] as const;
/** The secret `terraform-apply` may pass as a variable, by its logical name `deploy-token`. */
export const SANDBOX_DEPLOY_TOKEN = { credential: 'deploy-token', secretId: 'sandbox/deploy-token' } as const;

export interface SandboxTerraform {
  /** The `terraform` entry of the sandbox environment. */
  config: TerraformConfig;
  /** The sandbox's default inputs of `terraform-apply`. */
  defaults: Pick<TerraformApplyInputs, 'dir' | 'workspace'>;
  /** The real AWS provider (true), or terraform_data stand-ins (no mirror found). */
  realProvider: boolean;
  /** Removes the directory. */
  stop(): Promise<void>;
}

/** The configuration; without the real provider, `terraform_data` stands in for each bucket (its `input` is the name). */
function configuration(realProvider: boolean): string {
  const type = realProvider ? 'aws_s3_bucket' : 'terraform_data';
  const name = realProvider ? 'bucket' : 'input';
  return `# The sandbox's infrastructure for terraform-apply: one bucket per workspace,
# and extra ones named by a variable (so a run can add or destroy some).
${realProvider ? '' : '# Stand-ins (terraform_data): no hashicorp/aws provider mirror was found.\n'}
variable "extra_buckets" {
  type        = list(string)
  default     = []
  description = "more buckets, named sandbox-tf-<workspace>-<name>"
}

variable "deploy_token" {
  type        = string
  default     = ""
  sensitive   = true
  description = "a secret variable (credential deploy-token); only its hash leaves Terraform"
}

locals {
  prefix = "sandbox-tf-\${terraform.workspace}"
}

resource "${type}" "assets" {
  ${name} = "\${local.prefix}-assets"
}

resource "${type}" "extra" {
  for_each = toset(var.extra_buckets)
  ${name} = "\${local.prefix}-\${each.key}"
}

output "assets_bucket" {
  value = ${type}.assets.${realProvider ? 'bucket' : 'output'}
}

output "deploy_token_sha256" {
  value = nonsensitive(sha256(var.deploy_token))
}
`;
}

export async function seedTerraform(options: { awsEndpoint: string; region: string }): Promise<SandboxTerraform | undefined> {
  let terraform: string;
  try {
    terraform = await resolveTerraform(defaultToolsDir);
  } catch (err) {
    console.warn(`sandbox: no terraform-apply directory: ${(err as Error).message}`);
    return undefined;
  }
  const folder = await mkdtemp(join(tmpdir(), 'runbook-sandbox-terraform-'));
  const dir = join(folder, 'infra');
  const mirror = findProviderMirror();
  if (!mirror)
    console.warn(
      'sandbox: real provider not found (no hashicorp/aws mirror): the sandbox Terraform directory uses terraform_data stand-ins',
    );
  const cliConfig = mirror ? await writeCliConfig(join(folder, 'terraform.rc'), mirror) : undefined;
  await mkdir(dir);
  await writeFile(join(dir, 'main.tf'), configuration(Boolean(mirror)));
  if (mirror) await writeFile(join(dir, 'provider.tf'), motoProviderConfig({ endpoint: options.awsEndpoint, region: options.region }));

  const run = (args: string[]) =>
    execa(terraform, args, { cwd: dir, env: { TF_IN_AUTOMATION: '1', ...(cliConfig ? { TF_CLI_CONFIG_FILE: cliConfig } : {}) } });
  // init writes the lock file runs then read (`-lockfile=readonly`).
  await run(['init', '-input=false', '-no-color']);
  for (const workspace of SANDBOX_WORKSPACES) await run(['workspace', 'new', '-no-color', workspace]);
  await run(['workspace', 'select', 'default']);

  const secrets = new SecretsManagerClient({
    endpoint: options.awsEndpoint,
    region: options.region,
    credentials: { accessKeyId: MOTO_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_AWS_ENV.AWS_SECRET_ACCESS_KEY },
  });
  try {
    await secrets.send(
      new CreateSecretCommand({ Name: SANDBOX_DEPLOY_TOKEN.secretId, SecretString: 'sandbox-deploy-token-not-for-history' }),
    );
  } finally {
    secrets.destroy();
  }

  return {
    config: {
      dirs: { sandbox: dir },
      ...(cliConfig ? { cliConfig } : {}),
      credentials: { [SANDBOX_DEPLOY_TOKEN.credential]: `secretsmanager:${SANDBOX_DEPLOY_TOKEN.secretId}` },
    },
    defaults: { dir: 'sandbox', workspace: 'staging' },
    realProvider: Boolean(mirror),
    stop: () => rm(folder, { recursive: true, force: true }),
  };
}
