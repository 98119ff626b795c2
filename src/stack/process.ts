/**
 * Long-running local servers that never outlive us. Each runs under a guard
 * process (see guard.ts) that stops the server's whole process group when we
 * ask, when we exit, on SIGINT/SIGTERM, and when we are SIGKILLed. We install
 * no signal handlers: whatever ends this process closes the guards' stdin.
 *
 * Started servers do not keep the event loop alive: a script that forgets
 * `stop()` still exits, and its servers go with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GUARD_CONFIG_ENV, type GuardConfig, type GuardMessage } from './guard-protocol.js';
import { logTail, waitFor } from './ports.js';
import { sendSignal } from './proc.js';

const GUARD_SCRIPT = fileURLToPath(new URL('./guard.js', import.meta.url));
const DEFAULT_GRACE_MS = 10_000;
/** Beyond the server's grace: the guard's own SIGKILL round and exit. */
const GUARD_STOP_MARGIN_MS = 10_000;

export interface ReadinessCheck {
  /** Resolves true once the server does its job; may throw while it cannot yet. */
  check: () => Promise<boolean>;
  timeoutMs: number;
  /** For error messages, e.g. "moto on http://127.0.0.1:5000". */
  what: string;
}

export interface ServerSpec {
  /** Short name for messages: "postgres". */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives the server's stdout and stderr, and the guard's notes; truncated at start. */
  logFile: string;
  /** Run as another user; we must be root. */
  user?: { uid: number; gid: number };
  /** Asks the server for a clean shutdown. Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
  /** Time for a clean shutdown before SIGKILL. Default 10 s. */
  graceMs?: number;
  /** Deleted once the server is gone, even if we were killed. */
  removeAfterStop?: string[];
  /** When given, startServer resolves only once the server passes it. */
  ready?: ReadinessCheck;
}

export interface ManagedServer {
  readonly name: string;
  /** The server process; also its process group id. */
  readonly pid: number;
  /** The guard process watching it. */
  readonly guardPid: number;
  readonly logFile: string;
  /** Why the server stopped without being asked to, if it did. */
  exitReason(): string | undefined;
  /** Stops the server and waits until its whole process tree is gone. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `spec.command` under a guard; with `spec.ready`, waits until it serves. */
export async function startServer(spec: ServerSpec): Promise<ManagedServer> {
  const guard = await spawnGuard(spec);
  const server = new GuardedServer(spec, guard);
  try {
    await server.started;
    if (spec.ready) {
      await waitFor(spec.ready.check, {
        what: spec.ready.what,
        timeoutMs: spec.ready.timeoutMs,
        logFile: spec.logFile,
        failFast: () => server.exitReason(),
      });
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  server.detachFromEventLoop();
  return server;
}

async function spawnGuard(spec: ServerSpec): Promise<ChildProcess> {
  const config: GuardConfig = {
    command: spec.command,
    args: spec.args,
    env: definedValues(spec.env ?? process.env),
    cwd: spec.cwd,
    uid: spec.user?.uid,
    gid: spec.user?.gid,
    stopSignal: spec.stopSignal ?? 'SIGTERM',
    graceMs: spec.graceMs ?? DEFAULT_GRACE_MS,
    removeAfterStop: spec.removeAfterStop ?? [],
  };
  await mkdir(dirname(spec.logFile), { recursive: true });
  const log = await open(spec.logFile, 'w');
  try {
    // The name in argv only labels the guard in `ps`.
    return spawn(process.execPath, [GUARD_SCRIPT, spec.name], {
      // The guard's stderr is the log file, and the server inherits it from there.
      stdio: ['pipe', 'pipe', log.fd],
      // Our NODE_OPTIONS (an inspector port, a loader) are not meant for the guard.
      env: { ...process.env, NODE_OPTIONS: '', [GUARD_CONFIG_ENV]: JSON.stringify(config) },
    });
  } finally {
    await log.close();
  }
}

class GuardedServer implements ManagedServer {
  readonly name: string;
  readonly logFile: string;
  /** Resolves once the server process exists. */
  readonly started: Promise<void>;
  private serverPid: number | undefined;
  private exit: string | undefined;
  private readonly guardExited: Promise<void>;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly spec: ServerSpec,
    private readonly guard: ChildProcess,
  ) {
    this.name = spec.name;
    this.logFile = spec.logFile;
    this.guardExited = new Promise((resolve) => {
      guard.once('exit', () => {
        this.noteUnaskedExit('its guard exited');
        resolve();
      });
      // A guard that could not even be spawned never emits 'exit'.
      guard.once('error', () => guard.pid === undefined && resolve());
    });
    this.started = new Promise((resolve, reject) => {
      createInterface({ input: guard.stdout! }).on('line', (line) => {
        const message = JSON.parse(line) as GuardMessage;
        if (message.type === 'started') {
          this.serverPid = message.pid;
          resolve();
        } else if (message.type === 'spawn-failed') {
          this.noteUnaskedExit(`could not run ${spec.command}: ${message.message}`);
        } else {
          this.noteUnaskedExit(`it exited with ${message.signal ? `signal ${message.signal}` : `code ${message.code}`}`);
        }
      });
      guard.once('error', (error) => reject(new Error(`Could not start the guard for ${spec.name}: ${error.message}`)));
      void this.guardExited.then(async () => {
        if (this.serverPid === undefined) reject(await this.startError());
      });
    });
  }

  get pid(): number {
    return this.serverPid ?? 0;
  }

  get guardPid(): number {
    return this.guard.pid ?? 0;
  }

  exitReason(): string | undefined {
    return this.exit;
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopGuard();
    return this.stopping;
  }

  /** From now on the server runs in the background and does not hold our process open. */
  detachFromEventLoop(): void {
    this.guard.unref();
    (this.guard.stdin as Socket | null)?.unref();
    (this.guard.stdout as Socket | null)?.unref();
  }

  private noteUnaskedExit(reason: string): void {
    if (this.stopping === undefined) this.exit ??= reason;
  }

  private async stopGuard(): Promise<void> {
    if (this.guard.exitCode !== null || this.guard.signalCode !== null) return;
    this.guard.ref(); // stay alive until the tree is gone
    this.guard.stdin?.end(); // the guard's cue to stop the server
    const limitMs = (this.spec.graceMs ?? DEFAULT_GRACE_MS) + GUARD_STOP_MARGIN_MS;
    const timer = setTimeout(() => this.killEverything(), limitMs);
    await this.guardExited;
    clearTimeout(timer);
  }

  /** Only if the guard itself hangs: never leave the server behind. */
  private killEverything(): void {
    if (this.serverPid !== undefined) sendSignal(-this.serverPid, 'SIGKILL');
    this.guard.kill('SIGKILL');
  }

  private async startError(): Promise<Error> {
    const tail = await logTail(this.spec.logFile);
    const why = this.exit ?? 'its guard exited first';
    return new Error(`${this.spec.name} did not start: ${why}\n--- last lines of ${this.spec.logFile} ---\n${tail || '(empty)'}`);
  }
}

function definedValues(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}
