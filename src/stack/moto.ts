/**
 * AWS for local runs: moto in server mode, one endpoint for every service.
 */
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath, isExecutable } from './executables.js';
import { startServer, type ManagedServer } from './process.js';

const MOTO_REQUIREMENT = 'moto[server]>=5,<6';
/** moto's server with the project's fixes to the emulator (see the launcher's docstring). */
const MOTO_LAUNCHER = fileURLToPath(new URL('../../../src/stack/moto-extensions/launch.py', import.meta.url));
/** Importing moto and its dependencies takes a few seconds on a cold cache. */
const READY_TIMEOUT_MS = 60_000;

/** Credentials moto accepts; the region our tests assume. */
export const MOTO_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_DEFAULT_REGION: 'us-east-1',
} as const;

export interface MotoOptions {
  port: number;
  logFile: string;
  /** Where a private moto install goes when the machine has none. */
  toolsDir: string;
  log?: (line: string) => void;
}

export interface MotoServer extends ManagedServer {
  /** Endpoint for every AWS SDK client: "http://127.0.0.1:5000". */
  endpoint: string;
}

interface Command {
  command: string;
  args: string[];
}

/** Starts moto; resolves once its management API answers. */
export async function startMoto(options: MotoOptions): Promise<MotoServer> {
  const endpoint = `http://127.0.0.1:${options.port}`;
  const moto = await resolveMotoServer(options.toolsDir, options.log ?? (() => {}));
  const server = await startServer({
    name: 'moto',
    command: moto.command,
    args: [...moto.args, '-H', '127.0.0.1', '-p', String(options.port)],
    // moto's request recorder (off until /moto-api/recorder/start-recording) writes here, not into our working directory.
    env: { ...process.env, ...MOTO_AWS_ENV, MOTO_RECORDER_FILEPATH: join(dirname(options.logFile), 'moto-recording.jsonl') },
    logFile: options.logFile,
    ready: { what: `moto on ${endpoint}`, timeoutMs: READY_TIMEOUT_MS, check: () => motoAnswers(endpoint) },
  });
  return Object.assign(server, { endpoint });
}

/** Forgets every resource moto holds, as if it had just started. */
export async function resetMoto(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`Resetting moto at ${endpoint} failed: HTTP ${response.status} ${await response.text()}`);
}

async function motoAnswers(endpoint: string): Promise<boolean> {
  const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
  await response.body?.cancel();
  return response.ok;
}

/**
 * A Python that imports moto (the system one, else a private venv under the
 * tools folder, created once with pip), running moto through our launcher so
 * the extensions in `moto-extensions/` are loaded.
 */
async function resolveMotoServer(toolsDir: string, log: (line: string) => void): Promise<Command> {
  const python = await findOnPath('python3');
  if (!python) {
    throw new Error(`moto needs Python 3: install python3 and python3-venv, or install moto yourself: pip install '${MOTO_REQUIREMENT}'`);
  }
  const withMoto = (await canImportMotoServer(python)) ? python : await installMotoInVenv(python, join(toolsDir, 'moto-venv'), log);
  return { command: withMoto, args: [MOTO_LAUNCHER] };
}

async function canImportMotoServer(python: string): Promise<boolean> {
  const probe = await execa(python, ['-c', 'import moto.server'], { reject: false });
  return !probe.failed;
}

async function installMotoInVenv(python: string, venv: string, log: (line: string) => void): Promise<string> {
  const venvPython = join(venv, 'bin', 'python3');
  if (await isExecutable(join(venv, 'bin', 'moto_server'))) return venvPython;
  log(`Installing ${MOTO_REQUIREMENT} into ${venv} (first time only)...`);
  await mkdir(venv, { recursive: true });
  const steps: Array<[string, string[]]> = [
    [python, ['-m', 'venv', venv]],
    [join(venv, 'bin', 'pip'), ['install', '--quiet', MOTO_REQUIREMENT]],
  ];
  for (const [command, args] of steps) {
    const result = await execa(command, args, { all: true, reject: false });
    if (result.failed) {
      throw new Error(
        `Installing moto failed at \`${[command, ...args].join(' ')}\`:\n${result.all}\n` +
          `On Debian/Ubuntu, \`python3 -m venv\` needs: apt-get install python3-venv`,
      );
    }
  }
  return venvPython;
}
