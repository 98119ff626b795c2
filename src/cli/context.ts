/** What every command shares: where Temporal is, who is asking, which config and catalog apply. */
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { builtinRunbooks, Catalog } from '../catalog/index.js';
import { defaultConfigPath, loadConfig, type RunbooksConfig } from '../config.js';
import { loadPlugins, pluginPaths, type RunbookPlugin } from '../plugins.js';
import { temporalTarget, type TemporalTarget } from '../temporal-connection.js';

export interface GlobalOptions {
  address?: string;
  namespace?: string;
  /** Temporal client config profile (TEMPORAL_PROFILE). */
  profile?: string;
  config?: string;
  json?: boolean;
}

/** What `runbook dev` leaves behind for the commands run next to it. */
export interface DevState {
  temporalAddress: string;
  uiUrl: string;
  awsEndpoint: string;
  postgresUrl: string;
  config: string;
}

export const DEV_STATE_FILE = resolve('.runbook', 'dev.json');

export class CommandContext {
  private client?: Client;
  private config?: RunbooksConfig | null;
  private plugins?: RunbookPlugin[];
  private target?: TemporalTarget;

  constructor(readonly options: GlobalOptions) {}

  get json(): boolean {
    return Boolean(this.options.json);
  }

  /** Address, namespace, TLS and API key: flags, then Temporal's client config profile and the runbooks config (see temporal-connection.ts). */
  get temporalTarget(): TemporalTarget {
    this.target ??= temporalTarget({
      address: this.options.address,
      namespace: this.options.namespace,
      profile: this.options.profile,
      config: this.optionalConfig()?.temporal,
    });
    return this.target;
  }

  get address(): string {
    return this.temporalTarget.address;
  }

  get namespace(): string {
    return this.temporalTarget.namespace;
  }

  /** The Temporal UI for this address: configured, else the dev server's convention (UI port = gRPC port + 1000). */
  get uiUrl(): string {
    const configured = process.env.TEMPORAL_UI_URL ?? this.optionalConfig()?.temporal.uiUrl;
    if (configured) return configured.replace(/\/$/, '');
    const [host, port] = this.address.split(':');
    return `${this.temporalTarget.secure.tls ? 'https' : 'http'}://${host}:${Number(port ?? 7233) + 1000}`;
  }

  runUrl(workflowId: string): string {
    return `${this.uiUrl}/namespaces/${encodeURIComponent(this.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  }

  configPath(): string | undefined {
    return this.options.config ?? defaultConfigPath();
  }

  /** The config, loaded and validated; throws a usage error when there is none. */
  requireConfig(): RunbooksConfig {
    const config = this.optionalConfig();
    if (config) return config;
    return loadConfig(this.configPath());
  }

  optionalConfig(): RunbooksConfig | undefined {
    if (this.config === undefined) {
      const path = this.configPath();
      this.config = path ? loadConfig(path) : null;
    }
    return this.config ?? undefined;
  }

  async loadPlugins(): Promise<RunbookPlugin[]> {
    if (!this.plugins) {
      const config = this.optionalConfig();
      this.plugins = await loadPlugins(pluginPaths(config?.plugins, config ? dirname(config.path) : undefined));
    }
    return this.plugins;
  }

  async catalog(): Promise<Catalog> {
    const plugins = await this.loadPlugins();
    return new Catalog([...builtinRunbooks, ...plugins.flatMap((p) => p.runbooks)]);
  }

  async temporal(): Promise<Client> {
    if (!this.client) {
      const { address, secure, profile } = this.temporalTarget;
      const connection = await Connection.connect({ address, ...secure, connectTimeout: '5s' }).catch((err: Error) => {
        const how = secure.tls ? ` over TLS (profile '${profile}')` : '';
        throw new Error(
          `cannot reach Temporal at ${address}${how}: ${err.message} (start one with \`npm start\`, or pass --address / --profile)`,
        );
      });
      this.client = new Client({ connection, namespace: this.namespace });
    }
    return this.client;
  }

  async close(): Promise<void> {
    await this.client?.connection.close();
  }
}

/** Who is acting: --as, else RUNBOOK_USER, else the OS user. */
export function identity(as?: string): string {
  return as ?? process.env.RUNBOOK_USER ?? userInfo().username;
}
