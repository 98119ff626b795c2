/**
 * Terraform against the local stack: the real `hashicorp/aws` provider from a
 * filesystem mirror (provider downloads cannot work here), pointed at moto.
 *
 *   findProviderMirror()     the mirror folder holding hashicorp/aws, or undefined
 *   writeCliConfig()         a CLI config (TF_CLI_CONFIG_FILE) that installs from it
 *   motoProviderConfig()     a provider block whose every endpoint is moto
 */
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MOTO_AWS_ENV } from './moto.js';

export const AWS_PROVIDER = { source: 'hashicorp/aws', version: '5.100.0' } as const;

const PROVIDER_PATH = join('registry.terraform.io', 'hashicorp', 'aws', AWS_PROVIDER.version);

/**
 * Where provider mirrors live: TF_PROVIDER_MIRROR, the machine image's
 * /opt/tf-plugins, then the folders Terraform itself searches on Linux.
 */
function candidateMirrors(): string[] {
  return [
    process.env.TF_PROVIDER_MIRROR,
    '/opt/tf-plugins',
    join(homedir(), '.terraform.d', 'plugins'),
    join(homedir(), '.local', 'share', 'terraform', 'plugins'),
    '/usr/local/share/terraform/plugins',
    '/usr/share/terraform/plugins',
  ].filter((dir): dir is string => Boolean(dir));
}

/** The first mirror holding hashicorp/aws at AWS_PROVIDER.version for this platform (unpacked layout), or undefined. */
export function findProviderMirror(candidates = candidateMirrors()): string | undefined {
  const platform = `${process.platform}_${process.arch === 'x64' ? 'amd64' : process.arch}`;
  return candidates.find((root) => {
    const dir = join(root, PROVIDER_PATH, platform);
    return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('terraform-provider-aws'));
  });
}

/**
 * A CLI configuration that installs hashicorp/aws from `mirror` only, so
 * `terraform init` never reaches for the registry. Use it as TF_CLI_CONFIG_FILE.
 */
export function cliConfig(mirror: string): string {
  return `# Written by temporal-runbooks: hashicorp/aws comes from a local mirror, never the registry.
provider_installation {
  filesystem_mirror {
    path    = ${JSON.stringify(mirror)}
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
`;
}

export async function writeCliConfig(path: string, mirror: string): Promise<string> {
  await writeFile(path, cliConfig(mirror));
  return path;
}

/** Services whose endpoint the provider sends to moto (every one a sandbox or test config might use). */
const MOTO_SERVICES = [
  's3',
  'sts',
  'iam',
  'ec2',
  'rds',
  'ecs',
  'ecr',
  'elbv2',
  'autoscaling',
  'kms',
  'secretsmanager',
  'ssm',
  'logs',
  'cloudwatch',
  'dynamodb',
  'sqs',
  'sns',
];

/**
 * `terraform { required_providers }` and a `provider "aws"` block for moto at
 * `endpoint`: path-style S3, no credential, account or metadata lookups, and
 * moto's fixed test credentials (so a worker's real ones never go to the emulator).
 */
export function motoProviderConfig(options: { endpoint: string; region: string }): string {
  const endpoints = MOTO_SERVICES.map((service) => `    ${service.padEnd(14)} = ${JSON.stringify(options.endpoint)}`).join('\n');
  return `# Written by temporal-runbooks: the real AWS provider, pointed at the local stack's moto.
terraform {
  required_providers {
    aws = {
      source  = "${AWS_PROVIDER.source}"
      version = "${AWS_PROVIDER.version}"
    }
  }
}

provider "aws" {
  region                      = ${JSON.stringify(options.region)}
  access_key                  = ${JSON.stringify(MOTO_AWS_ENV.AWS_ACCESS_KEY_ID)}
  secret_key                  = ${JSON.stringify(MOTO_AWS_ENV.AWS_SECRET_ACCESS_KEY)}
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true

  endpoints {
${endpoints}
  }
}
`;
}
