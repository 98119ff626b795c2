/**
 * Where Temporal is and how to reach it securely, for the CLI and the worker
 * alike: Temporal's own client config profiles (`@temporalio/envconfig`), so
 * one profile serves `runbook` and `temporal`. A profile comes from the TOML
 * file (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml), named
 * by --profile / TEMPORAL_PROFILE or the config's `temporal.profile` (else
 * `default`), overridden by the same TEMPORAL_* variables the temporal CLI reads
 * (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
 * TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
 * TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*).
 *
 * Address and namespace: --address/TEMPORAL_ADDRESS first; then a profile that
 * was asked for by name; then the runbooks config's `temporal.address`; then
 * the default profile; then localhost:7233. TLS, client certificate, API key and
 * gRPC metadata always come from the profile.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { ConfigError, type RunbooksConfig } from './config.js';

/** What both the client `Connection` and the worker's `NativeConnection` take besides the address. */
export type SecureOptions = Pick<NativeConnectionOptions, 'tls' | 'apiKey' | 'metadata'>;

export interface TemporalTarget {
  address: string;
  namespace: string;
  secure: SecureOptions;
  /** The profile used, for messages ("default" when none was named). */
  profile: string;
}

export interface TemporalTargetOptions {
  /** --address (commander fills it from TEMPORAL_ADDRESS). */
  address?: string;
  namespace?: string;
  /** --profile (commander fills it from TEMPORAL_PROFILE). */
  profile?: string;
  config?: RunbooksConfig['temporal'];
  env?: Record<string, string | undefined>;
}

export function temporalTarget(options: TemporalTargetOptions = {}): TemporalTarget {
  const env = definedOnly(options.env ?? process.env);
  const named = options.profile ?? env.TEMPORAL_PROFILE ?? options.config?.profile;
  const file = env.TEMPORAL_CONFIG_FILE ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'temporalio', 'temporal.toml');
  let profile: ReturnType<typeof loadClientConfigProfile>;
  let secure: SecureOptions;
  try {
    profile = loadClientConfigProfile({ profile: named, overrideEnvVars: env });
    const { tls, apiKey, metadata } = toClientOptions(profile).connectionOptions;
    secure = { ...(tls !== undefined ? { tls } : {}), ...(apiKey !== undefined ? { apiKey } : {}), ...(metadata ? { metadata } : {}) };
  } catch (err) {
    // TOML syntax errors (smol-toml) carry the line; say it up front, as for every other config file.
    const line = (err as { line?: number }).line;
    throw new ConfigError(
      `Temporal client config ${file}${line ? ` line ${line}` : ''}${named ? ` (profile '${named}')` : ''}: ${(err as Error).message}`,
    );
  }
  const fromProfile = named ? profile : {};
  const fallback = named ? {} : profile;
  return {
    address:
      options.address ?? env.TEMPORAL_ADDRESS ?? fromProfile.address ?? options.config?.address ?? fallback.address ?? 'localhost:7233',
    namespace:
      options.namespace ?? env.TEMPORAL_NAMESPACE ?? fromProfile.namespace ?? options.config?.namespace ?? fallback.namespace ?? 'default',
    secure,
    profile: named ?? 'default',
  };
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}
