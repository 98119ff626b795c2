/**
 * Ports for local servers, and waiting until a server answers on them.
 */
import { open } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * `count` distinct free ports. All are held open until every one is found, so
 * the OS cannot hand out the same port twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnAnyPort());
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function listenOnAnyPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

export interface WaitOptions {
  /** What we are waiting for, for the error message: "PostgreSQL on 127.0.0.1:5432". */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Log of the server we wait for; its tail goes into the error. */
  logFile?: string;
  /** Returns a reason to stop waiting at once, such as "the server exited". */
  failFast?: () => string | undefined;
}

/**
 * Polls `check` until it resolves true. A check that throws counts as "not
 * yet"; its last error is quoted if we time out.
 */
export async function waitFor(check: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reasonToStop = options.failFast?.();
    if (reasonToStop) throw await waitError(`Gave up waiting for ${options.what}: ${reasonToStop}`, options.logFile);
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${errorMessage(lastError)})` : '';
      throw await waitError(`Timed out after ${options.timeoutMs} ms waiting for ${options.what}${cause}`, options.logFile);
    }
    await sleep(options.intervalMs ?? 200);
  }
}

async function waitError(message: string, logFile: string | undefined): Promise<Error> {
  if (!logFile) return new Error(message);
  const tail = await logTail(logFile);
  return new Error(`${message}\n--- last lines of ${logFile} ---\n${tail || '(empty)'}`);
}

/** The last `lines` lines of a log file; empty when it does not exist (yet). */
export async function logTail(file: string, lines = 25): Promise<string> {
  const MAX_BYTES = 64 * 1024;
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - MAX_BYTES);
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(size - start), 0, size - start, start);
    return buffer.subarray(0, bytesRead).toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await handle.close();
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
