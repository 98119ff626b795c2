/** Runs the real `runbook` CLI as a separate process, as an operator would. */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { testStack } from '../setup.js';

export const cliPath = fileURLToPath(new URL('../../src/client.js', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function runbook(args: string[], options: { as?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = await execa(process.execPath, [cliPath, ...args], {
    env: { ...testStack().env, ...(options.as ? { RUNBOOK_USER: options.as } : {}), ...options.env },
    reject: false,
    timeout: 5 * 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the CLI with --json and parses what it printed. */
export async function runbookJson<T>(
  args: string[],
  options: { as?: string } = {},
): Promise<{ exitCode: number; json: T; stderr: string }> {
  const result = await runbook(['--json', ...args], options);
  const lastLine = result.stdout.trim().split('\n').at(-1) ?? '';
  let json: T;
  try {
    json = JSON.parse(result.stdout) as T;
  } catch {
    json = JSON.parse(lastLine) as T;
  }
  return { exitCode: result.exitCode, json, stderr: result.stderr };
}
