/**
 * CPU seconds spent over a measurement by this process, by the S3 server, and
 * by the whole machine (Linux /proc): on two cores shared by the copier and
 * the server, a copier's speed is mostly what its CPU per request leaves to
 * the server.
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { execa } from 'execa';

export interface CpuSpent {
  /** This process (the runbook's copier, when it is the one copying). */
  self: number;
  /** The server process. */
  server: number;
  /** Every process on the machine. */
  machine: number;
  /** Wall-clock seconds times cores: what the machine could have spent. */
  available: number;
}

export async function cpuMeter(serverPid: number): Promise<() => Promise<CpuSpent>> {
  const ticksPerSecond = Number((await execa('getconf', ['CLK_TCK'], { reject: false })).stdout) || 100;
  const serverSeconds = async () => {
    const stat = await readFile(`/proc/${serverPid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  };
  const machineSeconds = () => cpus().reduce((sum, { times: t }) => sum + t.user + t.nice + t.sys + t.irq, 0) / 1000;
  const self0 = process.cpuUsage();
  const server0 = await serverSeconds();
  const machine0 = machineSeconds();
  const started = performance.now();
  return async () => {
    const self = process.cpuUsage(self0);
    return {
      self: (self.user + self.system) / 1e6,
      server: (await serverSeconds()) - server0,
      machine: machineSeconds() - machine0,
      available: ((performance.now() - started) / 1000) * cpus().length,
    };
  };
}
