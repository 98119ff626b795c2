/**
 * The sandbox for `db-migration`. RDS instances live in moto, their databases
 * on the local PostgreSQL server: instance `X` is database `X` there (the
 * environment's `endpointMap`). Seeds:
 *
 * - the app role `app_db_user`, and Secrets Manager secrets for it and for the
 *   master user (JSON {username, password}, as RDS keeps them);
 * - the S3 bucket backups go to;
 * - the instance `sandbox-appdb`: in moto, and as a database with several
 *   tables joined by foreign keys, indexes, a sequence, a table without a
 *   primary key and a `schema_migration` table, owned by the app role;
 * - its writer, the ECS service `app-writer` (cluster `db-writers`, two tasks,
 *   DATABASE_HOST = the instance's endpoint), kept at its desired count by the
 *   ECS scheduler simulator, since moto schedules nothing.
 *
 * `seedAppDatabase` adds more such instances with their own writers: tests use
 * one per run, and the benchmark one of 100+ MB. Expects a fresh moto and cluster.
 */
import type { CredentialConfig } from '../../config.js';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateDBInstanceCommand, RDSClient, type CreateDBInstanceCommandInput } from '@aws-sdk/client-rds';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { scramSha256Verifier } from '../../activities/postgres.js';
import type { DbMigrationInputs } from '../../catalog/db-migration.js';
import { EcsSimulator } from './ecs-simulator.js';
import { withClient } from './pg.js';
import { defaultNetwork } from './ecs.js';

export const WRITERS_CLUSTER = 'db-writers';
export const BACKUP_BUCKET = 'sandbox-db-backups';
export const SANDBOX_SOURCE = 'sandbox-appdb';
export const APP_ROLE = 'app_db_user';
/** The database inside each instance, as the application names it. */
export const APP_DATABASE = 'appdb';
const WRITER_TASKS = 2;
/** Orders in the default sandbox database: enough to see the copy work, quick to seed. */
const DEFAULT_ORDERS = 2_000;
const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export interface AppDatabaseOptions {
  /** RDS identifier of the new source instance. */
  instance: string;
  /** Its writer service in cluster `db-writers`. */
  writerService: string;
  /** Orders to generate (each with three items); ~150,000 make 100+ MB. */
  orders?: number;
  /** More RDS settings of the instance (encryption, deletion protection, Multi-AZ, groups, …). */
  settings?: Partial<CreateDBInstanceCommandInput>;
}

export interface SeededAppDatabase {
  instance: string;
  endpoint: string;
  writer: { cluster: string; service: string };
  /** Superuser URL of the instance's database on the local server (holds a password: tests only). */
  url: string;
}

export interface SandboxDatabases {
  /** The sandbox's default inputs of `db-migration`. */
  defaults: DbMigrationInputs;
  seedAppDatabase(options: AppDatabaseOptions): Promise<SeededAppDatabase>;
  /** Superuser URL of instance `instance`'s database on the local server. */
  databaseUrl(instance: string): string;
  /** Every password the sandbox handed out, so tests can prove none leaks. */
  passwords: string[];
  /** The credentials of `defaults`, as the sandbox's config binds them to its instances. */
  credentials: Record<string, CredentialConfig>;
  stop(): Promise<void>;
}

/** Superuser URL of instance `instance`'s database on the local server (a pure function, so test processes can compute it too). */
export function instanceDatabaseUrl(postgresUrl: string, instance: string): string {
  return Object.assign(new URL(postgresUrl), { pathname: `/${encodeURIComponent(instance)}` }).toString();
}

export async function seedDatabases(options: { awsEndpoint: string; postgresUrl: string; region: string }): Promise<SandboxDatabases> {
  const config = { endpoint: options.awsEndpoint, region: options.region, credentials: MOTO_CREDENTIALS };
  const server = new URL(options.postgresUrl);
  const adminPassword = decodeURIComponent(server.password);
  const appPassword = randomBytes(18).toString('base64url');
  const databaseUrl = (instance: string) => instanceDatabaseUrl(options.postgresUrl, instance);

  const secrets = new SecretsManagerClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const ecs = new ECSClient(config);
  const rds = new RDSClient(config);
  const ec2 = new EC2Client(config);
  const simulator = new EcsSimulator(options.awsEndpoint, options.region, WRITERS_CLUSTER);

  const [adminSecret, appSecret] = await Promise.all([
    createSecret(secrets, 'sandbox/appdb/admin', 'postgres', adminPassword),
    createSecret(secrets, 'sandbox/appdb/app', APP_ROLE, appPassword),
  ]);
  await withClient(options.postgresUrl, (client) =>
    client.query(`CREATE ROLE ${pg.escapeIdentifier(APP_ROLE)} LOGIN PASSWORD ${pg.escapeLiteral(scramSha256Verifier(appPassword))}`),
  );
  await s3.send(new CreateBucketCommand({ Bucket: BACKUP_BUCKET }));
  await keepTasksRunning(options.awsEndpoint);
  await ecs.send(new CreateClusterCommand({ clusterName: WRITERS_CLUSTER }));
  const network = await defaultNetwork(ec2);
  simulator.start();

  const seedAppDatabase = async ({
    instance,
    writerService,
    orders = DEFAULT_ORDERS,
    settings = {},
  }: AppDatabaseOptions): Promise<SeededAppDatabase> => {
    const { DBInstance } = await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: instance,
        Engine: 'postgres',
        EngineVersion: '15',
        DBInstanceClass: 'db.t3.micro',
        AllocatedStorage: 20,
        DBName: APP_DATABASE,
        MasterUsername: 'postgres',
        MasterUserPassword: adminPassword,
        VpcSecurityGroupIds: [network.securityGroupId],
        PubliclyAccessible: false,
        ...settings,
      }),
    );
    const endpoint = DBInstance!.Endpoint!.Address!;
    await withClient(options.postgresUrl, (client) =>
      client.query(`CREATE DATABASE ${pg.escapeIdentifier(instance)} OWNER ${pg.escapeIdentifier(APP_ROLE)}`),
    );
    // As the app role, so it owns what it creates, as an application's migrations would.
    const asApp = Object.assign(new URL(databaseUrl(instance)), {
      username: APP_ROLE,
      password: encodeURIComponent(appPassword),
    }).toString();
    await withClient(asApp, async (client) => {
      await client.query(SCHEMA);
      await client.query(dataFor(orders));
    });
    await startWriter(ecs, writerService, endpoint, network);
    await waitForTasks(ecs, writerService, WRITER_TASKS, () => simulator.lastError?.message);
    return { instance, endpoint, writer: { cluster: WRITERS_CLUSTER, service: writerService }, url: databaseUrl(instance) };
  };

  try {
    await seedAppDatabase({ instance: SANDBOX_SOURCE, writerService: 'app-writer' });
  } catch (err) {
    await simulator.stop();
    throw err;
  }
  const clients = [secrets, s3, ecs, rds, ec2];
  return {
    defaults: {
      sourceInstance: SANDBOX_SOURCE,
      database: APP_DATABASE,
      newInstance: { identifier: `${SANDBOX_SOURCE}-2` },
      writers: [{ cluster: WRITERS_CLUSTER, service: 'app-writer' }],
      backup: { bucket: BACKUP_BUCKET },
      credentials: {
        app: { username: APP_ROLE, credential: 'app-db' },
        admin: { username: 'postgres', credential: 'app-db-admin' },
      },
      // The seed's "make it public and add a rule for us": here, for the worker on this machine.
      temporaryAccess: { cidr: '127.0.0.1/32' },
      tls: 'require',
      parallelJobs: 2,
      instanceTimeout: '5m',
      writersTimeout: '2m',
      endpointMap: { host: server.hostname, port: Number(server.port), database: '{instance}' },
    },
    // Bound to the sandbox's app instances (tests seed more, named after the first) and the ones runs create from them.
    credentials: {
      'app-db': { ref: `secretsmanager:${appSecret}#password`, allowedInstances: [`${SANDBOX_SOURCE}*`] },
      'app-db-admin': { ref: `secretsmanager:${adminSecret}#password`, allowedInstances: [`${SANDBOX_SOURCE}*`] },
    },
    seedAppDatabase,
    databaseUrl,
    passwords: [adminPassword, appPassword],
    async stop() {
      await simulator.stop();
      for (const client of clients) client.destroy();
    },
  };
}

const SCHEMA = `
  CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL
  );
  CREATE TABLE products (
    id serial PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    title text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0)
  );
  CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status text NOT NULL,
    placed_at timestamptz NOT NULL,
    note text
  );
  CREATE INDEX orders_customer_id_idx ON orders (customer_id);
  CREATE INDEX orders_placed_at_idx ON orders (placed_at);
  CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line smallint NOT NULL,
    product_id integer NOT NULL REFERENCES products (id),
    quantity integer NOT NULL,
    price_cents integer NOT NULL,
    PRIMARY KEY (order_id, line)
  );
  CREATE INDEX order_items_product_id_idx ON order_items (product_id);
  -- Like many real logs: no primary key. Its replica identity is the whole row, so it can be replicated (online mode).
  CREATE TABLE audit_log (
    at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    payload jsonb
  );
  ALTER TABLE audit_log REPLICA IDENTITY FULL;
  CREATE SEQUENCE invoice_number_seq START 1000;
  CREATE TABLE schema_migration (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL
  );
`;

/** Deterministic rows (no now(), no random()), so two seeds of the same size are equal. */
function dataFor(orders: number): string {
  const customers = Math.max(50, Math.floor(orders / 4));
  return `
    INSERT INTO schema_migration (version, applied_at) VALUES
      ('20230104120000_create_customers', '2023-01-04 12:00:00+00'),
      ('20230104120500_create_products', '2023-01-04 12:05:00+00'),
      ('20230211093000_create_orders', '2023-02-11 09:30:00+00'),
      ('20230211094500_create_order_items', '2023-02-11 09:45:00+00'),
      ('20230520160000_create_audit_log', '2023-05-20 16:00:00+00');
    INSERT INTO products (sku, title, price_cents)
      SELECT 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i || ' ' || md5('product' || i), 100 + (i * 37) % 9900
        FROM generate_series(1, 500) AS i;
    INSERT INTO customers (email, name, created_at)
      SELECT 'customer' || i || '@example.com', 'Customer ' || md5('customer' || i), timestamptz '2023-01-01 00:00:00+00' + i * interval '61 seconds'
        FROM generate_series(1, ${customers}) AS i;
    INSERT INTO orders (customer_id, status, placed_at, note)
      SELECT 1 + i % ${customers}, (ARRAY['placed', 'paid', 'shipped', 'delivered', 'returned'])[1 + i % 5],
             timestamptz '2023-03-01 00:00:00+00' + i * interval '37 seconds',
             CASE WHEN i % 3 = 0 THEN NULL ELSE 'deliver to ' || repeat(md5('order' || i), 2) END
        FROM generate_series(1, ${orders}) AS i;
    INSERT INTO order_items (order_id, line, product_id, quantity, price_cents)
      SELECT o, l, 1 + (o * 7 + l * 13) % 500, 1 + (o + l) % 4, 100 + (o * l * 11) % 9900
        FROM generate_series(1, ${orders}) AS o, generate_series(1, 3) AS l;
    INSERT INTO audit_log (at, actor, action, payload)
      SELECT timestamptz '2023-03-01 00:00:00+00' + i * interval '74 seconds', 'customer' || (1 + i % ${customers}), 'order.paid',
             jsonb_build_object('order', 1 + (i * 2) % ${orders}, 'digest', md5('audit' || i))
        FROM generate_series(1, ${Math.max(1, Math.floor(orders / 2))}) AS i;
    SELECT setval('invoice_number_seq', 1000 + ${Math.floor(orders / 10)});
    ANALYZE;
  `;
}

async function createSecret(secrets: SecretsManagerClient, name: string, username: string, password: string): Promise<string> {
  const { ARN } = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ username, password }) }));
  return ARN!;
}

interface Network {
  subnetIds: string[];
  securityGroupId: string;
}

/** The application's task definition reads its database from the environment, as the runbook expects. */
async function startWriter(ecs: ECSClient, service: string, databaseHost: string, network: Network): Promise<void> {
  const { taskDefinition } = await ecs.send(
    new RegisterTaskDefinitionCommand({
      family: service,
      networkMode: 'awsvpc',
      requiresCompatibilities: ['FARGATE'],
      cpu: '256',
      memory: '512',
      containerDefinitions: [
        {
          name: 'app',
          image: 'sandbox/app-writer:latest',
          // moto sizes tasks from the containers' own cpu and memory.
          cpu: 256,
          memory: 512,
          environment: [
            { name: 'DATABASE_HOST', value: databaseHost },
            { name: 'DATABASE_NAME', value: APP_DATABASE },
            { name: 'DATABASE_USER', value: APP_ROLE },
          ],
        },
      ],
    }),
  );
  await ecs.send(
    new CreateServiceCommand({
      cluster: WRITERS_CLUSTER,
      serviceName: service,
      taskDefinition: taskDefinition!.taskDefinitionArn,
      desiredCount: WRITER_TASKS,
      launchType: 'FARGATE',
      networkConfiguration: { awsvpcConfiguration: { subnets: network.subnetIds.slice(0, 2), securityGroups: [network.securityGroupId] } },
    }),
  );
}

/** Until the simulator has started the service's tasks. */
async function waitForTasks(ecs: ECSClient, service: string, count: number, simulatorError: () => string | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { taskArns = [] } = await ecs.send(
      new ListTasksCommand({ cluster: WRITERS_CLUSTER, serviceName: service, desiredStatus: 'RUNNING' }),
    );
    if (taskArns.length >= count) {
      const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: WRITERS_CLUSTER, tasks: taskArns }));
      if (tasks.filter((t) => t.group === `service:${service}` && t.lastStatus === 'RUNNING').length >= count) return;
    }
    if (Date.now() > deadline)
      throw new Error(
        `the ECS simulator did not start ${count} tasks of ${service} within 30 s (${simulatorError() ?? 'no error reported'})`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * moto moves a task one state towards STOPPED each time it is described;
 * with manual progression a task stays RUNNING until StopTask, as in ECS.
 * The setting is global to the moto server (rolling-restart's seed sets it too).
 */
async function keepTasksRunning(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/state-manager/set-transition`, {
    method: 'POST',
    body: JSON.stringify({ model_name: 'ecs::task', transition: { progression: 'manual', times: Number.MAX_SAFE_INTEGER } }),
  });
  if (!response.ok) throw new Error(`moto refused the ECS task state transition: HTTP ${response.status} ${await response.text()}`);
}
