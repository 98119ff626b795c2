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

function run(command, args, { exitOnFailure = true } = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw new Error(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0 && exitOnFailure) {
    say(`\`${[command, ...args].join(' ')}\` failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status || 1);
  }
  return result.status === 0;
}

/** npm records what it installed in node_modules/.package-lock.json; an older record means a stale install. */
function installIsStale() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(installed)) return true;
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs;
}

/** Under `npm run`, the very npm that runs us; otherwise whichever is on PATH. */
function npm(args, options) {
  const npmCli = process.env.npm_execpath;
  if (npmCli && npmCli.endsWith('.js')) return run(process.execPath, [npmCli, ...args], options);
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, options);
}

if (installIsStale()) {
  const locked = existsSync(join(root, 'package-lock.json'));
  say(`installing dependencies (npm ${locked ? 'ci' : 'install'})`);
  // A registry mirror without some platforms' optional packages (e.g. @swc/core for macOS) leaves them out
  // of the lock, and npm ci then refuses it as out of sync; npm install still installs what the lock pins.
  if (!locked || !npm(['ci', '--no-audit', '--no-fund'], { exitOnFailure: false })) {
    if (locked) say('npm ci refused the lock; installing with npm install from the same lock');
    npm(['install', '--no-audit', '--no-fund']);
  }
} else {
  say('dependencies up to date');
}

say('compiling TypeScript');
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')]);

const { resolveTemporalCli } = await import(pathToFileURL(join(root, 'dist', 'src', 'stack', 'temporal.js')).href);
const cli = await resolveTemporalCli(join(root, '.tools'), say);
say(`Temporal CLI: ${cli}`);
