/**
 * AWS clients db-migration needs beyond those `AwsClients` (aws.ts) offers:
 * EC2 for security-group rules and Secrets Manager for credentials. Built and
 * cached per connection the same way, so they belong in `AwsClients` once its
 * owner folds them in; until then this keeps aws.ts untouched.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { AwsConnection } from '../config.js';

export interface ExtraAwsClients {
  readonly ec2: EC2Client;
  readonly secretsManager: SecretsManagerClient;
}

/** How activities get these clients; tests may hand in their own. */
export type ExtraAwsClientFactory = (connection: AwsConnection) => ExtraAwsClients;

const cache = new Map<string, ExtraAwsClients>();

export const extraAwsClients: ExtraAwsClientFactory = (connection) => {
  const key = JSON.stringify([connection.region, connection.endpoint ?? null, connection.profile ?? null]);
  let clients = cache.get(key);
  if (!clients) {
    const common = {
      region: connection.region,
      ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
      ...(connection.profile ? { profile: connection.profile } : {}),
    };
    let ec2: EC2Client | undefined;
    let secretsManager: SecretsManagerClient | undefined;
    clients = {
      get ec2() {
        return (ec2 ??= new EC2Client(common));
      },
      get secretsManager() {
        return (secretsManager ??= new SecretsManagerClient(common));
      },
    };
    cache.set(key, clients);
  }
  return clients;
};
