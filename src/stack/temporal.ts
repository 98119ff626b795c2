/**
 * Temporal for local runs: the CLI's dev server, with the runbook search
 * attributes registered and the Web UI on its own port.
 */
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { searchAttributes } from '../messages.js';
import { findOnPath, isExecutable } from './executables.js';
import { logTail } from './ports.js';
import { startServer, type ManagedServer } from './process.js';

/** The newest CLI tag that `go install` accepts (later ones carry `replace` directives). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

/** A fresh SQLite schema plus the UI can take a while on a slow CI machine. */
const READY_TIMEOUT_MS = 90_000;

/** `--search-attribute` type names, which differ from the SDK's. */
const CLI_TYPE_NAMES: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/**
 * The Temporal CLI to run: `TEMPORAL_CLI`, else `temporal` on PATH, else our
 * own build under `<toolsDir>/bin`, built with `go install` when missing.
 */
export async function resolveTemporalCli(toolsDir: string, log: (line: string) => void = () => {}): Promise<string> {
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (await isExecutable(fromEnv)) return fromEnv;
    throw new Error(`TEMPORAL_CLI is set to ${fromEnv}, which is not an executable file.`);
  }
  const onPath = await findOnPath('temporal');
  if (onPath) return onPath;
  const local = join(toolsDir, 'bin', 'temporal');
  if (!(await isExecutable(local))) await buildTemporalCli(toolsDir, log);
  return local;
}

async function buildTemporalCli(toolsDir: string, log: (line: string) => void): Promise<void> {
  const go = await findOnPath('go');
  if (!go) {
    throw new Error(
      'The Temporal CLI is missing and cannot be built because Go is not installed. Either install Go 1.25 or newer ' +
        `(https://go.dev/dl/) so it can be built once into ${join(toolsDir, 'bin')}, or install the Temporal CLI ` +
        '(https://docs.temporal.io/cli#install) and put `temporal` on PATH or set TEMPORAL_CLI to its path.',
    );
  }
  const binDir = join(toolsDir, 'bin');
  const buildLog = join(toolsDir, 'temporal-build.log');
  log(`Building the Temporal CLI (${TEMPORAL_CLI_MODULE}) into ${binDir}; the first build takes a few minutes...`);
  await mkdir(binDir, { recursive: true });
  const build = await execa(go, ['install', TEMPORAL_CLI_MODULE], {
    env: { GOBIN: binDir },
    all: true,
    reject: false,
  });
  await writeFile(buildLog, build.all ?? '');
  if (build.failed) {
    throw new Error(
      `Building the Temporal CLI failed (${build.shortMessage}).\n--- last lines of ${buildLog} ---\n${await logTail(buildLog)}`,
    );
  }
  log(`Built the Temporal CLI: ${join(binDir, 'temporal')}`);
}

export interface TemporalOptions {
  /** Path of the Temporal CLI, from resolveTemporalCli. */
  cli: string;
  port: number;
  uiPort: number;
  /** SQLite file that keeps workflows across restarts; in memory when absent. */
  dbFile?: string;
  logFile: string;
  /** Created at launch besides `default`; the dev server registers the search attributes in each. */
  namespaces?: string[];
}

export interface TemporalServer extends ManagedServer {
  /** gRPC address for clients and workers: "127.0.0.1:7233". */
  address: string;
  uiUrl: string;
}

/** Starts the dev server; resolves once both gRPC and the UI answer. */
export async function startTemporal(options: TemporalOptions): Promise<TemporalServer> {
  const address = `127.0.0.1:${options.port}`;
  const uiUrl = `http://127.0.0.1:${options.uiPort}`;
  if (options.dbFile) await mkdir(dirname(options.dbFile), { recursive: true });
  const server = await startServer({
    name: 'temporal',
    command: options.cli,
    args: devServerArgs(options),
    logFile: options.logFile,
    ready: {
      what: `Temporal on ${address} with its UI on ${uiUrl}`,
      timeoutMs: READY_TIMEOUT_MS,
      check: () => temporalAnswers(address, uiUrl),
    },
  });
  return Object.assign(server, { address, uiUrl });
}

function devServerArgs(options: TemporalOptions): string[] {
  return [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--ui-port',
    String(options.uiPort),
    ...(options.dbFile ? ['--db-filename', options.dbFile] : []),
    ...(options.namespaces ?? []).flatMap((namespace) => ['--namespace', namespace]),
    '--log-level',
    'warn',
    '--color',
    'never',
    ...Object.values(searchAttributes).flatMap((key) => ['--search-attribute', `${key.name}=${CLI_TYPE_NAMES[key.type]}`]),
  ];
}

async function temporalAnswers(address: string, uiUrl: string): Promise<boolean> {
  // lazy + ensureConnected rather than connect(): a failed connect() leaks its channel.
  const connection = Connection.lazy({ address, connectTimeout: '2s' });
  try {
    await connection.ensureConnected();
    await connection.workflowService.getSystemInfo({});
  } finally {
    await connection.close();
  }
  const ui = await fetch(uiUrl, { signal: AbortSignal.timeout(2_000) });
  await ui.body?.cancel();
  return ui.status === 200;
}
