/**
 * A run names a Terraform directory from its environment's allowlist
 * (`terraform.dirs` in the worker's config), never a path: a client could
 * otherwise point the worker's Terraform at any state on the worker's disk.
 */
import { z } from 'zod';
import type { EnvironmentConfig } from '../config.js';

export const terraformDirName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be the name of a Terraform directory: letters, digits, _ and -')
  .describe("name of a Terraform directory in the environment's allowlist (terraform.dirs in the config), never a path");

/** Why `name` (given as `field`) is not a Terraform directory of the environment, or null. */
export function terraformDirProblem(field: string, name: string, env: EnvironmentConfig): string | null {
  const dirs = env.terraform?.dirs ?? {};
  if (name in dirs) return null;
  return `${field}: '${name}' is not a Terraform directory of ${env.name} (allowed: ${Object.keys(dirs).join(', ') || 'none; add terraform.dirs to the environment'})`;
}

/** The directory's path on the worker; call only after terraformDirProblem said null. */
export function terraformDirPath(name: string, env: EnvironmentConfig): string {
  return env.terraform!.dirs[name]!;
}
