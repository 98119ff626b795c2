/**
 * Credentials bound to destinations: the worker's environments file names each
 * credential and the only hosts or RDS instances it may be sent to (see
 * `credentialSchema` in config.ts). The catalog asks here when it resolves a
 * run (so a dry run refuses too), and the activity that connects asks again
 * with the address it is about to use, before any password leaves the worker.
 *
 * Pure (no I/O).
 */
import type { CredentialConfig, EnvironmentConfig } from './config.js';

/** Where a credential is about to go: an RDS instance (its host from the RDS API) or a bare host. */
export interface Destination {
  /** The RDS instance identifier, when the host came from the RDS API (or the emulator's mapping of it). */
  instance?: string;
  host: string;
  port: number;
}

/** The environment's credential `name`, or a "field: rule" reason it cannot be used. */
export function findCredential(
  env: Pick<EnvironmentConfig, 'name' | 'credentials'>,
  name: string,
  field: string,
): CredentialConfig | string {
  const found = Object.hasOwn(env.credentials, name) ? env.credentials[name] : undefined;
  if (found) return found;
  const known = Object.keys(env.credentials);
  return `${field}: no credential '${name}' on ${env.name} (credentials in the worker's config: ${known.length ? known.join(', ') : 'none'})`;
}

/** Null when `credential` may be sent to `to`; else a "field: rule" reason naming the destination. */
export function destinationProblem(credential: CredentialConfig, name: string, to: Destination, field: string): string | null {
  if (credential.allowedInstances) {
    if (to.instance && credential.allowedInstances.some((pattern) => matchesInstance(pattern, to.instance!))) return null;
    const where = to.instance ? `RDS instance ${to.instance}` : `host ${to.host}:${to.port} (not an RDS instance)`;
    return `${field}: credential '${name}' may only be sent to RDS instances ${credential.allowedInstances.join(', ')}, not to ${where}`;
  }
  if ((credential.allowedHosts ?? []).some((pattern) => matchesHost(pattern, to.host, to.port))) return null;
  return `${field}: credential '${name}' may only be sent to ${(credential.allowedHosts ?? []).join(', ')}, not to ${to.host}:${to.port}`;
}

/** `app-db` matches itself only; `app-db-*` matches every identifier starting `app-db-`. Case-insensitive, as RDS is. */
export function matchesInstance(pattern: string, instance: string): boolean {
  const p = pattern.toLowerCase();
  const i = instance.toLowerCase();
  return p.endsWith('*') ? i.startsWith(p.slice(0, -1)) : i === p;
}

/** `db.example.com` or `db.example.com:5432`; `*` stands for exactly one name label. Case-insensitive. */
export function matchesHost(pattern: string, host: string, port: number): boolean {
  const colon = pattern.lastIndexOf(':');
  const [patternHost, patternPort] = colon > 0 ? [pattern.slice(0, colon), Number(pattern.slice(colon + 1))] : [pattern, undefined];
  if (patternPort !== undefined && patternPort !== port) return false;
  const want = patternHost.toLowerCase().split('.');
  const got = host.toLowerCase().replace(/\.$/, '').split('.');
  return want.length === got.length && want.every((label, i) => label === '*' || label === got[i]);
}
