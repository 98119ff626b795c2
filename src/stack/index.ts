/**
 * The local stack, without Docker: Temporal (dev server + UI), AWS (moto) and
 * PostgreSQL, each on 127.0.0.1, each stopped with us however we end.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMoto } from './moto.js';
import { freePorts } from './ports.js';
import { startPostgres } from './postgres.js';
import type { ManagedServer } from './process.js';
import { resolveTemporalCli, startTemporal } from './temporal.js';

export { resetMoto, MOTO_AWS_ENV } from './moto.js';
export { findPgBinDir } from './postgres.js';
export { resolveTemporalCli } from './temporal.js';

/** The project root: this file is dist/src/stack/index.js. */
export const projectRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** Where built or installed tools (Temporal CLI, moto venv) are cached. */
export const defaultToolsDir = join(projectRoot, '.tools');

export interface StackOptions {
  /** Holds logs/, the Temporal SQLite file (when persisted) and the PostgreSQL cluster. */
  dataDir: string;
  /** Default: `<project root>/.tools`. */
  toolsDir?: string;
  /** Default: a free port. */
  temporalPort?: number;
  /** Default: a free port. */
  uiPort?: number;
  /** Keep workflows across restarts in `<dataDir>/temporal.db`. Default: in memory. */
  persistTemporal?: boolean;
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
  /** Temporal namespaces to create besides `default`, each with the runbook search attributes (test lanes use one each). */
  namespaces?: string[];
}

export interface Stack {
  temporalAddress: string;
  uiUrl: string;
  awsEndpoint: string;
  postgresUrl: string;
  /** The CA bundle (PEM) that signed PostgreSQL's server certificate. */
  postgresCa: string;
  /** psql, pg_dump and pg_restore matching the server. */
  pgBinDir: string;
  /** One `<server>.log` per server. */
  logDir: string;
  /** Every process the stack runs (servers and their guards), for leak checks. */
  pids(): number[];
  /** Stops everything, last started first, and waits until all is gone. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the three servers in parallel: a fresh PostgreSQL cluster and a fresh
 * moto every time, Temporal fresh unless persisted. If any fails to start, the
 * others are stopped again and the error names what failed.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const toolsDir = options.toolsDir ?? defaultToolsDir;
  const logDir = join(options.dataDir, 'logs');
  const cli = await resolveTemporalCli(toolsDir, log);
  const startedAt = Date.now();

  const startAll = async () => {
    const [temporalPort, uiPort, motoPort, postgresPort] = await portsFor(options);
    return startAllOrNone([
      startTemporal({
        cli,
        port: temporalPort,
        uiPort,
        dbFile: options.persistTemporal ? join(options.dataDir, 'temporal.db') : undefined,
        namespaces: options.namespaces,
        logFile: join(logDir, 'temporal.log'),
      }),
      startMoto({ port: motoPort, logFile: join(logDir, 'moto.log'), toolsDir, log }),
      startPostgres({ dataDir: join(options.dataDir, 'postgres'), port: postgresPort, logFile: join(logDir, 'postgres.log'), fresh: true }),
    ] as const);
  };
  const [temporal, moto, postgres] = await withFreshPortsOnConflict(startAll, options, log);
  log(
    `Local stack ready in ${Date.now() - startedAt} ms: Temporal ${temporal.address} (UI ${temporal.uiUrl}), ` +
      `AWS ${moto.endpoint}, PostgreSQL 127.0.0.1:${postgres.port}; logs in ${logDir}`,
  );

  const servers: ManagedServer[] = [temporal, moto, postgres];
  let stopping: Promise<void> | undefined;
  return {
    temporalAddress: temporal.address,
    uiUrl: temporal.uiUrl,
    awsEndpoint: moto.endpoint,
    postgresUrl: postgres.url,
    postgresCa: join(postgres.dataDir, 'root.crt'),
    pgBinDir: postgres.binDir,
    logDir,
    pids: () => servers.flatMap((server) => [server.pid, server.guardPid]),
    stop: () => (stopping ??= stopInReverse(servers)),
  };
}

/**
 * A free port is only free until someone binds it: another process may take it
 * between our probe and the server's bind. When that happens to ports we chose,
 * choose again; ports the caller fixed are reported as they are.
 */
async function withFreshPortsOnConflict<T>(start: () => Promise<T>, options: StackOptions, log: (line: string) => void): Promise<T> {
  const portsAreOurs = options.temporalPort === undefined && options.uiPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (!portsAreOurs || attempt >= 3 || !/address already in use|EADDRINUSE/i.test(messageOf(error))) throw error;
      log(`a port was taken while the stack started; retrying with other ports (attempt ${attempt + 1})`);
    }
  }
}

async function portsFor(options: StackOptions): Promise<[number, number, number, number]> {
  const [a, b, c, d] = await freePorts(4);
  return [options.temporalPort ?? a!, options.uiPort ?? b!, c!, d!];
}

/** Waits for every start; if any failed, stops those that did start and throws. */
async function startAllOrNone<T extends readonly Promise<ManagedServer>[]>(
  starts: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(starts);
  const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
  if (failures.length === 0) {
    return results.map((result) => (result as PromiseFulfilledResult<ManagedServer>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
  }
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  await stopInReverse(started);
  if (failures.length === 1) throw failures[0];
  throw new Error(`The local stack did not start:\n\n${failures.map(messageOf).join('\n\n')}`);
}

async function stopInReverse(servers: ManagedServer[]): Promise<void> {
  const failures: unknown[] = [];
  for (const server of [...servers].reverse()) {
    await server.stop().catch((error: unknown) => failures.push(error));
  }
  if (failures.length > 0) throw new Error(`Stopping the local stack failed:\n${failures.map(messageOf).join('\n')}`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
