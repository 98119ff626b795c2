/**
 * Region data for `region-data-update`: a bucket of small TopoJSON files per
 * region (current data and new data), and a `districtbuilder` database with
 * the `region_config` table, whose password sits in the emulator's Secrets Manager.
 */
import type { CredentialConfig } from '../../config.js';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateDBInstanceCommand, RDSClient } from '@aws-sdk/client-rds';
import pg from 'pg';
import { withClient } from './pg.js';

export const REGION_BUCKET = 'sandbox-region-data';
const DB_NAME = 'districtbuilder';
/** The app's database role: owns region_config and schema_migration. */
export const DB_USER = 'districtbuilder';

export interface RegionSeedOptions {
  awsEndpoint: string;
  region: string;
  /** Superuser URL of the sandbox's PostgreSQL. */
  postgresUrl: string;
}

/** What tests and the sandbox use to make regions: each one's current data, its new data, and its row. */
/** The logical name of the region_config database's password in the sandbox's config. */
export const REGIONS_CREDENTIAL = 'regions-db';

export interface SandboxRegions {
  bucket: string;
  /** Superuser URL of the database holding region_config (for tests to inspect it). */
  databaseUrl: string;
  /** A region with current data at version `version`, in region_config, and new data ready. */
  addRegion(id: string, version: number): Promise<{ uri: string; newDataUri: string }>;
  /** New data only, for a region not yet in region_config. */
  addNewData(id: string): Promise<string>;
  putObject(key: string, body: string): Promise<void>;
  /**
   * The same database as an RDS instance in the emulator, for protected
   * environments (hosts only from the RDS API; the worker maps the emulator's
   * endpoints to the local server with `emulatedRds`), and its password's reference.
   */
  instance: string;
  credentialRef: string;
}

/** The RDS instance (in the emulator) that stands for the region_config database on protected test environments. */
export const REGIONS_INSTANCE = 'sandbox-regions';

export async function seedRegions(
  options: RegionSeedOptions,
): Promise<{ defaults: Record<string, unknown>; regions: SandboxRegions; credentials: Record<string, CredentialConfig> }> {
  const aws = { region: options.region, endpoint: options.awsEndpoint, forcePathStyle: true };
  const s3 = new S3Client(aws);
  const password = randomBytes(18).toString('base64url');
  const server = new URL(options.postgresUrl);
  await createDatabase(options.postgresUrl, password);
  const databaseUrl = Object.assign(new URL(options.postgresUrl), { pathname: `/${DB_NAME}` }).toString();
  const secret = await new SecretsManagerClient(aws).send(
    new CreateSecretCommand({ Name: 'sandbox/districtbuilder-db', SecretString: JSON.stringify({ username: DB_USER, password }) }),
  );
  await s3.send(new CreateBucketCommand({ Bucket: REGION_BUCKET }));
  const rds = new RDSClient(aws);
  await rds.send(
    new CreateDBInstanceCommand({
      DBInstanceIdentifier: REGIONS_INSTANCE,
      Engine: 'postgres',
      EngineVersion: '15',
      DBInstanceClass: 'db.t3.micro',
      AllocatedStorage: 20,
      DBName: DB_NAME,
      MasterUsername: DB_USER,
      MasterUserPassword: password,
    }),
  );
  rds.destroy();
  const credentialRef = `secretsmanager:${secret.ARN}#password`;

  const putObject = async (key: string, body: string) => {
    await s3.send(new PutObjectCommand({ Bucket: REGION_BUCKET, Key: key, Body: body, ContentType: 'application/json' }));
  };
  const putRegionData = async (prefix: string, label: string) => {
    for (const layer of ['counties', 'blockgroups']) await putObject(`${prefix}/${layer}.topojson`, JSON.stringify(topology(layer, label)));
  };
  const regions: SandboxRegions = {
    bucket: REGION_BUCKET,
    instance: REGIONS_INSTANCE,
    credentialRef,
    databaseUrl,
    async addRegion(id, version) {
      await putRegionData(`regions/${id}/v${version}`, `${id} v${version}`);
      const newDataUri = await regions.addNewData(id);
      const uri = `s3://${REGION_BUCKET}/regions/${id}/v${version}`;
      await withClient(databaseUrl, (db) =>
        db.query('INSERT INTO region_config (id, s3_uri, version) VALUES ($1, $2, $3)', [id, uri, version]),
      );
      return { uri, newDataUri };
    },
    async addNewData(id) {
      await putRegionData(`incoming/${id}`, `${id} new`);
      return `s3://${REGION_BUCKET}/incoming/${id}`;
    },
    putObject,
  };

  const existing = [await regions.addRegion('PA', 3), await regions.addRegion('MI', 7)];
  const added = await regions.addNewData('WI');
  return {
    regions,
    defaults: {
      regions: [
        { id: 'PA', newDataUri: existing[0]!.newDataUri },
        { id: 'MI', newDataUri: existing[1]!.newDataUri },
        { id: 'WI', newDataUri: added, new: true },
      ],
      database: {
        host: server.hostname,
        port: Number(server.port),
        database: DB_NAME,
        username: DB_USER,
        credential: REGIONS_CREDENTIAL,
        tls: true,
      },
    },
    // The worker's side: where that credential's secret is, and the one server it may be sent to.
    credentials: { [REGIONS_CREDENTIAL]: { ref: credentialRef, allowedHosts: [`${server.hostname}:${server.port}`] } },
  };
}

/** A small but real TopoJSON topology: one polygon per layer, labelled so tests can tell data sets apart. */
export function topology(layer: string, label: string): object {
  return {
    type: 'Topology',
    objects: {
      [layer]: { type: 'GeometryCollection', geometries: [{ type: 'Polygon', arcs: [[0]], properties: { name: label, layer } }] },
    },
    arcs: [
      [
        [0, 0],
        [1, 0],
        [0, 1],
        [-1, -1],
      ],
    ],
  };
}

async function createDatabase(superuserUrl: string, password: string): Promise<void> {
  await withClient(superuserUrl, async (db) => {
    await db.query(`CREATE ROLE ${DB_USER} LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
    await db.query(`CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}`);
  });
  const url = Object.assign(new URL(superuserUrl), { pathname: `/${DB_NAME}` }).toString();
  await withClient(url, async (db) => {
    await db.query('CREATE TABLE region_config (id text PRIMARY KEY, s3_uri text NOT NULL, version integer NOT NULL DEFAULT 1)');
    await db.query(`ALTER TABLE region_config OWNER TO ${DB_USER}`);
  });
}
