/**
 * Numbers as people read them in prompts and summaries ("2,001 objects, 13.2 MiB").
 * Pure: workflow code uses it too.
 */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${formatCount(value)} bytes` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** A duration as config writes it back: "2h", "45m", "90s". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The readable tail of an ARN: `arn:aws:ecs:…:task/cluster/abc123` → `abc123`. */
export function shortArn(arn: string): string {
  return arn.split('/').at(-1) ?? arn;
}
