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
