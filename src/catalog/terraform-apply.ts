/** Catalog entry of `terraform-apply` (seed 002 "Updating the Infrastructure", seed 003 "Terraform", seed 000). */
import { z } from 'zod';
import type { EnvironmentConfig } from '../config.js';
import { terraformApplyPlan, type TerraformApplyParams } from '../workflows/terraform-apply.js';
import { defineRunbook } from './definition.js';
import { terraformDirName, terraformDirPath, terraformDirProblem } from './terraform-dir.js';

const name = (what: string) => z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, `must be ${what}: letters, digits, _ and -`);
const variableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, 'must be a Terraform variable name');

/** A path inside the Terraform directory (no absolute path, no `..`), or an s3://bucket/key object. */
const varFile = z.string().superRefine((file, ctx) => {
  if (file.startsWith('s3://')) {
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.*[^/]$/.test(file))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${file}' names no object (s3://bucket/key)` });
  } else if (file.startsWith('/') || file.split(/[\\/]/).includes('..') || !file) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `'${file}' must be a path inside the Terraform directory (no leading /, no ..), or s3://bucket/key`,
    });
  }
});

const params = z
  .object({
    dir: terraformDirName,
    workspace: name('a Terraform workspace name').describe(
      'Terraform workspace to plan and apply in (staging, production, …); must exist, a run never creates one',
    ),
    varFiles: z
      .array(varFile)
      .default([])
      .describe("var files, in order: paths inside the directory, or s3://bucket/key (downloaded into the run's folder)"),
    vars: z
      .record(variableName, z.union([z.string(), z.number(), z.boolean(), z.array(z.unknown()), z.record(z.unknown())]))
      .default({})
      .describe('non-secret variables, e.g. --set vars.image_tag=abc123 --set \'vars.buckets=["a","b"]\''),
    secretVars: z
      .record(variableName, name('a credential name'))
      .default({})
      .describe(
        'secret variables by logical credential name (terraform.credentials in the config), e.g. --set secretVars.db_password=app-db; passed to Terraform as TF_VAR_<name> inside the plan only',
      ),
    checkImage: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._/-]{0,255}:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be <ECR repository>:<tag>, e.g. app:abc123')
      .optional()
      .describe('seed 003: refuse before planning unless this image is published in ECR, e.g. --set checkImage=app:abc123'),
    allow: z
      .array(z.string().min(1))
      .default([])
      .describe('addresses the plan may destroy or replace (a module or resource covers its instances); default: none'),
  })
  // A mistyped --set key must not silently plan without the variable.
  .strict();

type Params = z.infer<typeof params>;

function check(p: Params, env: EnvironmentConfig): string | null {
  const dirProblem = terraformDirProblem('dir', p.dir, env);
  if (dirProblem) return dirProblem;
  const credentials = env.terraform?.credentials ?? {};
  for (const [variable, credential] of Object.entries(p.secretVars)) {
    if (!(credential in credentials))
      return `secretVars.${variable}: no credential '${credential}' on ${env.name} (known: ${Object.keys(credentials).join(', ') || 'none'})`;
  }
  return null;
}

export const terraformApplyRunbook = defineRunbook({
  name: 'terraform-apply',
  workflowType: 'terraformApply',
  description: 'terraform init, workspace, plan -out, plan guard, review checkpoint, apply of exactly the reviewed plan',
  params,
  plan: terraformApplyPlan,
  // One run per directory and workspace: two plans of one state must never race.
  target: (p) => `${p.dir}.${p.workspace}`,
  summary: (p, env) =>
    `terraform plan and apply ${p.dir}, workspace ${p.workspace}, on ${env.name}: ` +
    `${p.allow.length ? `may destroy or replace only ${p.allow.join(', ')}` : 'no destroy or replace allowed'}; applied once reviewed`,
  check,
  prepare: (p, env): TerraformApplyParams => {
    const t = env.terraform!;
    return {
      aws: env.aws,
      dirName: p.dir,
      dir: terraformDirPath(p.dir, env),
      ...(t.cliConfig ? { cliConfig: t.cliConfig } : {}),
      workspace: p.workspace,
      varFiles: p.varFiles,
      vars: p.vars,
      secretVars: Object.fromEntries(Object.entries(p.secretVars).map(([variable, credential]) => [variable, t.credentials[credential]!])),
      allow: p.allow,
      ...(p.checkImage ? { checkImage: imageRef(p.checkImage) } : {}),
    };
  },
});

function imageRef(image: string): { repository: string; tag: string } {
  const at = image.lastIndexOf(':');
  return { repository: image.slice(0, at), tag: image.slice(at + 1) };
}

export type TerraformApplyInputs = z.input<typeof params>;
