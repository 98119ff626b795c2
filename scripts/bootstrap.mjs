#!/usr/bin/env node
/**
 * Gets a checkout ready for `npm start` and `npm test` (their pre-scripts):
 * dependencies installed, TypeScript compiled, Temporal CLI present. A cold CI
 * machine builds the CLI here, once and visibly, rather than inside a test's
 * timeout. No dependencies: it runs before node_modules exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function say(line) {
  console.log(`[bootstrap] ${line}`);
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw new Error(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) {
    say(`\`${[command, ...args].join(' ')}\` failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status || 1);
  }
}

/** npm records what it installed in node_modules/.package-lock.json; an older record means a stale install. */
function installIsStale() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(installed)) return true;
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs;
}

/** Under `npm run`, the very npm that runs us; otherwise whichever is on PATH. */
function npm(args) {
  const npmCli = process.env.npm_execpath;
  if (npmCli && npmCli.endsWith('.js')) run(process.execPath, [npmCli, ...args]);
  else run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args);
}

if (installIsStale()) {
  const ci = existsSync(join(root, 'package-lock.json'));
  say(`installing dependencies (npm ${ci ? 'ci' : 'install'})`);
  npm([ci ? 'ci' : 'install', '--no-audit', '--no-fund']);
} else {
  say('dependencies up to date');
}

say('compiling TypeScript');
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')]);

const { resolveTemporalCli } = await import(pathToFileURL(join(root, 'dist', 'src', 'stack', 'temporal.js')).href);
const cli = await resolveTemporalCli(join(root, '.tools'), say);
say(`Temporal CLI: ${cli}`);
