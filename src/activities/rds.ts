/**
 * RDS: read instances, create the new one and wait until it serves, open and
 * close temporary access to a private instance, and delete the old one with a
 * final snapshot. Each change checks what is already there first, so a
 * repeated call after a lost result does no harm.
 *
 * Emulated environments (an `endpointMap`, see pg-connect.ts) also get what
 * RDS would do to the database server: creating an instance creates its
 * initial database on the mapped server, deleting it drops that database.
 */
import {
  CreateDBInstanceCommand,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  ModifyDBInstanceCommand,
  type CreateDBInstanceCommandInput,
  type DBInstance,
  type RDSClient,
} from '@aws-sdk/client-rds';
import {
  AuthorizeSecurityGroupIngressCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupIngressCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsConnection } from '../config.js';
import { abortable, awsFailure, callAws, clientFactory, invalidInput, type AwsClientFactory } from './aws.js';
import { extraAwsClients, type ExtraAwsClientFactory } from './aws-extra-clients.js';
import { heartbeatWhile } from './heartbeat.js';
import {
  maintenanceDb,
  physicalAddress,
  quoteIdent,
  resolveLogin,
  withPg,
  type Credentials,
  type DatabaseLocation,
  type Endpoint,
  type EndpointMap,
} from './pg-connect.js';
import type { CredentialResolver, SecretSources } from './secrets.js';

export interface RdsDeps {
  aws?: AwsClientFactory;
  awsExtra?: ExtraAwsClientFactory;
}

export interface InstanceInfo {
  identifier: string;
  status: string;
  engine: string;
  engineVersion: string;
  instanceClass: string;
  allocatedStorageGb: number;
  /** Unset until RDS has one (while creating). */
  endpoint: Endpoint | null;
  dbName: string | null;
  masterUsername: string | null;
  publiclyAccessible: boolean;
  securityGroupIds: string[];
  subnetGroup: string | null;
  tags: Record<string, string>;
  /** What protects the data (issue 11.3: the new instance carries it); absent in results recorded before it was read. */
  protection?: InstanceProtection;
}

/** The settings a replacement must keep, so the new instance is at least as protected as the old. */
export interface InstanceProtection {
  storageEncrypted: boolean;
  /** The KMS key of encrypted storage. */
  kmsKeyId: string | null;
  deletionProtection: boolean;
  multiAz: boolean;
  parameterGroup: string | null;
  optionGroup: string | null;
  backupRetentionDays: number;
  iamAuth: boolean;
}

export interface NewInstanceSpec {
  aws: AwsConnection;
  identifier: string;
  /** The instance it replaces: engine, storage, network and security groups are copied from it. */
  like: InstanceInfo;
  instanceClass?: string;
  engineVersion?: string;
  allocatedStorageGb?: number;
  /** The database RDS creates inside the new instance. */
  dbName: string;
  admin: Credentials;
  adminField: string;
  sources: SecretSources;
  tls: 'require' | 'disable';
  endpointMap?: EndpointMap;
  /** ISO time after which waiting for `available` gives up. */
  deadline: string;
}

/** In emulated environments, what creating an instance must also do on the mapped server. */
export interface MappedDatabaseSpec {
  dbName: string;
  admin: Credentials;
  adminField: string;
  sources: SecretSources;
  tls: 'require' | 'disable';
  endpointMap: EndpointMap;
}

/** Tag that marks an instance as made by this runbook, from which instance: how a retry recognises its own creation. */
export const MIGRATED_FROM_TAG = 'runbook:db-migration:from';

const FIRST_POLL_MS = 2_000;
const MAX_POLL_MS = 30_000;

export function createRdsActivities(deps: RdsDeps, credentials: CredentialResolver) {
  const clients = clientFactory(deps);
  const extra = deps.awsExtra ?? extraAwsClients;

  return {
    async describeDbInstance(args: { aws: AwsConnection; identifier: string; field: string }): Promise<InstanceInfo> {
      const found = await findInstance(clients(args.aws).rds, args.identifier);
      if (!found) throw invalidInput(args.field, `no RDS instance '${args.identifier}' in ${args.aws.region}`);
      return found;
    },

    async checkDbInstanceAbsent(args: { aws: AwsConnection; identifier: string; field: string }): Promise<{ absent: true }> {
      const found = await findInstance(clients(args.aws).rds, args.identifier);
      if (found)
        throw invalidInput(
          args.field,
          `RDS instance '${args.identifier}' already exists (${found.status}); choose another identifier or remove it`,
        );
      return { absent: true };
    },

    /**
     * Creates the new instance like the old one and waits until it is
     * available. An instance of that name already tagged as made from the same
     * source is ours (a retry after a lost result); any other is refused.
     */
    async createDbInstance(spec: NewInstanceSpec): Promise<InstanceInfo> {
      const rds = clients(spec.aws).rds;
      const existing = await findInstance(rds, spec.identifier);
      if (existing && existing.tags[MIGRATED_FROM_TAG] !== spec.like.identifier) {
        throw ApplicationFailure.create({
          type: 'TargetExists',
          message: `RDS instance '${spec.identifier}' exists and was not made by this migration`,
          nonRetryable: true,
        });
      }
      if (!existing) {
        // The master password goes to RDS for this instance: the admin credential must be bound to it.
        const password = await credentials.password(
          spec.admin,
          { instance: spec.identifier, host: 'rds-api', port: 443 },
          spec.sources,
          spec.adminField,
        );
        // Read again here, not taken from the workflow: results recorded before protection was read lack it.
        const old = (await requireInstance(rds, spec.like.identifier)).protection!;
        const sameMajor = major(spec.engineVersion ?? spec.like.engineVersion) === major(spec.like.engineVersion);
        await callAws(
          `create RDS instance ${spec.identifier}`,
          () =>
            rds.send(
              new CreateDBInstanceCommand({
                DBInstanceIdentifier: spec.identifier,
                DBInstanceClass: spec.instanceClass ?? spec.like.instanceClass,
                Engine: spec.like.engine,
                EngineVersion: spec.engineVersion ?? spec.like.engineVersion,
                AllocatedStorage: Math.max(spec.allocatedStorageGb ?? 0, spec.like.allocatedStorageGb),
                DBName: spec.dbName,
                MasterUsername: spec.admin.username,
                MasterUserPassword: password,
                VpcSecurityGroupIds: spec.like.securityGroupIds,
                ...(spec.like.subnetGroup ? { DBSubnetGroupName: spec.like.subnetGroup } : {}),
                PubliclyAccessible: false,
                ...carriedProtection(old, sameMajor),
                Tags: [{ Key: MIGRATED_FROM_TAG, Value: spec.like.identifier }],
              }),
              abortable(),
            ),
          'newInstance',
        );
      }
      const ready = await waitAvailable(rds, spec.identifier, spec.deadline);
      if (spec.endpointMap) await createMappedDatabase(ready, { ...spec, endpointMap: spec.endpointMap }, credentials);
      return ready;
    },

    /** For instances someone else creates (Terraform): waits until RDS reports it available. */
    async waitForDbInstance(args: {
      aws: AwsConnection;
      identifier: string;
      deadline: string;
      emulate?: MappedDatabaseSpec;
    }): Promise<InstanceInfo> {
      const ready = await waitAvailable(clients(args.aws).rds, args.identifier, args.deadline);
      if (args.emulate) await createMappedDatabase(ready, args.emulate, credentials);
      return ready;
    },

    /**
     * Makes a private instance reachable for the copy: publicly accessible,
     * and an ingress rule for `cidr` on its first security group, described
     * with `marker` so closing removes exactly the rules this run added.
     */
    async openTemporaryAccess(args: {
      aws: AwsConnection;
      identifier: string;
      cidr: string;
      marker: string;
      deadline: string;
    }): Promise<{ madePublic: boolean; ruleAdded: boolean }> {
      const rds = clients(args.aws).rds;
      const instance = await requireInstance(rds, args.identifier);
      const groupId = instance.securityGroupIds[0];
      if (!groupId) throw invalidInput('temporaryAccess', `${args.identifier} has no VPC security group to add a rule to`);
      const ruleAdded = await addIngressRule(extra(args.aws).ec2, groupId, instance.endpoint?.port ?? 5432, args.cidr, args.marker);
      const madePublic = !instance.publiclyAccessible;
      if (madePublic) {
        await setPubliclyAccessible(rds, args.identifier, true);
        await waitAvailable(rds, args.identifier, args.deadline);
      }
      return { madePublic, ruleAdded };
    },

    /**
     * Takes back what `openTemporaryAccess` gave, whether or not it finished:
     * removes the rules carrying `marker` and makes each instance private
     * again unless it was public before. Instances that no longer exist are skipped.
     */
    async closeTemporaryAccess(args: {
      aws: AwsConnection;
      instances: { identifier: string; wasPublic: boolean }[];
      marker: string;
      deadline: string;
    }): Promise<{ rulesRemoved: number; madePrivate: string[] }> {
      const rds = clients(args.aws).rds;
      let rulesRemoved = 0;
      const madePrivate: string[] = [];
      for (const { identifier, wasPublic } of args.instances) {
        const instance = await findInstance(rds, identifier);
        if (!instance) continue;
        for (const groupId of instance.securityGroupIds)
          rulesRemoved += await removeIngressRules(extra(args.aws).ec2, groupId, args.marker);
        if (instance.publiclyAccessible && !wasPublic) {
          await setPubliclyAccessible(rds, identifier, false);
          await waitAvailable(rds, identifier, args.deadline);
          madePrivate.push(identifier);
        }
      }
      return { rulesRemoved, madePrivate };
    },

    /** Deletes the instance after a final snapshot; an instance already gone with its snapshot taken counts as done. */
    async deleteDbInstance(args: {
      aws: AwsConnection;
      identifier: string;
      finalSnapshotId: string;
      /** Emulated environments: the mapped database that stands for the instance is dropped too. */
      mapped?: { location: DatabaseLocation; admin: Credentials; adminField: string; sources: SecretSources };
      deadline: string;
    }): Promise<{ finalSnapshotId: string; alreadyDeleted: boolean }> {
      const rds = clients(args.aws).rds;
      const instance = await findInstance(rds, args.identifier);
      if (instance && instance.status !== 'deleting' && instance.protection?.deletionProtection) {
        // Lifted only here, after the approval to delete (the prompt says so): RDS refuses to delete a protected instance.
        await callAws(`lift the deletion protection of ${args.identifier}`, () =>
          rds.send(
            new ModifyDBInstanceCommand({ DBInstanceIdentifier: args.identifier, DeletionProtection: false, ApplyImmediately: true }),
            abortable(),
          ),
        );
        await waitAvailable(rds, args.identifier, args.deadline);
      }
      if (instance && instance.status !== 'deleting') {
        await callAws(`delete RDS instance ${args.identifier}`, () =>
          rds.send(
            new DeleteDBInstanceCommand({
              DBInstanceIdentifier: args.identifier,
              FinalDBSnapshotIdentifier: args.finalSnapshotId,
              SkipFinalSnapshot: false,
            }),
            abortable(),
          ),
        );
      }
      await waitGone(rds, args.identifier, args.deadline);
      if (!(await snapshotExists(rds, args.finalSnapshotId))) {
        throw ApplicationFailure.create({
          type: 'FinalSnapshotMissing',
          message: `${args.identifier} is gone but its final snapshot ${args.finalSnapshotId} is not there`,
          nonRetryable: true,
        });
      }
      if (args.mapped) await dropMappedDatabase(args.mapped, credentials);
      return { finalSnapshotId: args.finalSnapshotId, alreadyDeleted: !instance };
    },
  };
}

export type RdsActivities = ReturnType<typeof createRdsActivities>;

// --- reading ---------------------------------------------------------------------------------------

async function findInstance(rds: RDSClient, identifier: string): Promise<InstanceInfo | undefined> {
  try {
    const answer = await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: identifier }), abortable());
    const instance = answer.DBInstances?.[0];
    return instance ? toInfo(instance) : undefined;
  } catch (err) {
    if ((err as Error).name === 'DBInstanceNotFoundFault' || (err as Error).name === 'DBInstanceNotFound') return undefined;
    throw awsFailure(err, `describe RDS instance ${identifier}`);
  }
}

async function requireInstance(rds: RDSClient, identifier: string): Promise<InstanceInfo> {
  const found = await findInstance(rds, identifier);
  if (!found)
    throw ApplicationFailure.create({ type: 'InstanceGone', message: `RDS instance ${identifier} does not exist`, nonRetryable: true });
  return found;
}

function toInfo(instance: DBInstance): InstanceInfo {
  return {
    identifier: instance.DBInstanceIdentifier!,
    status: instance.DBInstanceStatus ?? 'unknown',
    engine: instance.Engine ?? 'postgres',
    engineVersion: instance.EngineVersion ?? '',
    instanceClass: instance.DBInstanceClass ?? '',
    allocatedStorageGb: instance.AllocatedStorage ?? 20,
    endpoint: instance.Endpoint?.Address ? { host: instance.Endpoint.Address, port: instance.Endpoint.Port ?? 5432 } : null,
    dbName: instance.DBName ?? null,
    masterUsername: instance.MasterUsername ?? null,
    publiclyAccessible: instance.PubliclyAccessible ?? false,
    securityGroupIds: (instance.VpcSecurityGroups ?? []).flatMap((g) => (g.VpcSecurityGroupId ? [g.VpcSecurityGroupId] : [])),
    subnetGroup: instance.DBSubnetGroup?.DBSubnetGroupName ?? null,
    tags: Object.fromEntries((instance.TagList ?? []).flatMap((t) => (t.Key ? [[t.Key, t.Value ?? '']] : []))),
    protection: {
      storageEncrypted: instance.StorageEncrypted ?? false,
      kmsKeyId: instance.StorageEncrypted ? (instance.KmsKeyId ?? null) : null,
      deletionProtection: instance.DeletionProtection ?? false,
      multiAz: instance.MultiAZ ?? false,
      parameterGroup: instance.DBParameterGroups?.[0]?.DBParameterGroupName ?? null,
      optionGroup: instance.OptionGroupMemberships?.[0]?.OptionGroupName ?? null,
      backupRetentionDays: instance.BackupRetentionPeriod ?? 0,
      iamAuth: instance.IAMDatabaseAuthenticationEnabled ?? false,
    },
  };
}

/**
 * The create parameters that keep the old instance's protection. Custom
 * parameter and option groups belong to an engine major version, so they are
 * carried only when it stays (the cutover prompt names them otherwise);
 * default groups RDS picks itself.
 */
function carriedProtection(old: InstanceProtection, sameMajor: boolean): Partial<CreateDBInstanceCommandInput> {
  const custom = (group: string | null) =>
    group && !group.startsWith('default.') && !group.startsWith('default:') && sameMajor ? group : undefined;
  const parameterGroup = custom(old.parameterGroup);
  const optionGroup = custom(old.optionGroup);
  return {
    StorageEncrypted: old.storageEncrypted,
    ...(old.storageEncrypted && old.kmsKeyId ? { KmsKeyId: old.kmsKeyId } : {}),
    DeletionProtection: old.deletionProtection,
    MultiAZ: old.multiAz,
    ...(parameterGroup ? { DBParameterGroupName: parameterGroup } : {}),
    ...(optionGroup ? { OptionGroupName: optionGroup } : {}),
    BackupRetentionPeriod: old.backupRetentionDays,
    EnableIAMDatabaseAuthentication: old.iamAuth,
  };
}

function major(version: string): number {
  return Number.parseInt(version, 10);
}

async function snapshotExists(rds: RDSClient, snapshotId: string): Promise<boolean> {
  try {
    const answer = await rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId }), abortable());
    return (answer.DBSnapshots ?? []).length > 0;
  } catch (err) {
    if ((err as Error).name === 'DBSnapshotNotFoundFault' || (err as Error).name === 'DBSnapshotNotFound') return false;
    throw awsFailure(err, `describe snapshot ${snapshotId}`);
  }
}

// --- waiting ---------------------------------------------------------------------------------------

/** Polls with backoff until the instance is available, heartbeating; creating an instance takes minutes on AWS. */
async function waitAvailable(rds: RDSClient, identifier: string, deadline: string): Promise<InstanceInfo> {
  return poll(`RDS instance ${identifier} to be available`, deadline, async () => {
    const instance = await requireInstance(rds, identifier);
    if (
      ['failed', 'incompatible-parameters', 'incompatible-network', 'storage-full', 'inaccessible-encryption-credentials'].includes(
        instance.status,
      )
    ) {
      throw ApplicationFailure.create({
        type: 'InstanceFailed',
        message: `RDS instance ${identifier} is ${instance.status}`,
        nonRetryable: true,
      });
    }
    return instance.status === 'available' && instance.endpoint ? instance : undefined;
  });
}

async function waitGone(rds: RDSClient, identifier: string, deadline: string): Promise<void> {
  await poll(`RDS instance ${identifier} to be deleted`, deadline, async () => ((await findInstance(rds, identifier)) ? undefined : true));
}

async function poll<T>(what: string, deadline: string, check: () => Promise<T | undefined>): Promise<T> {
  const context = Context.current();
  return heartbeatWhile(
    async () => {
      for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
        const result = await check();
        if (result !== undefined) return result;
        if (Date.now() >= Date.parse(deadline)) {
          throw ApplicationFailure.create({
            type: 'WaitTimedOut',
            message: `gave up waiting for ${what} at ${deadline}`,
            nonRetryable: true,
          });
        }
        // Context.sleep rejects with a CancelledFailure when the run is cancelled meanwhile.
        await context.sleep(Math.min(delay, Math.max(0, Date.parse(deadline) - Date.now())));
      }
    },
    () => ({ waitingFor: what }),
  );
}

// --- access ----------------------------------------------------------------------------------------

async function setPubliclyAccessible(rds: RDSClient, identifier: string, value: boolean): Promise<void> {
  await callAws(`make ${identifier} ${value ? 'publicly accessible' : 'private'}`, () =>
    rds.send(
      new ModifyDBInstanceCommand({ DBInstanceIdentifier: identifier, PubliclyAccessible: value, ApplyImmediately: true }),
      abortable(),
    ),
  );
}

/** True when this call (or an earlier attempt with the same marker) added the rule; false when it was there before us. */
async function addIngressRule(ec2: EC2Client, groupId: string, port: number, cidr: string, marker: string): Promise<boolean> {
  try {
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, IpRanges: [{ CidrIp: cidr, Description: marker }] }],
      }),
      abortable(),
    );
    return true;
  } catch (err) {
    if ((err as Error).name !== 'InvalidPermission.Duplicate')
      throw awsFailure(err, `add rule for ${cidr} to ${groupId}`, 'temporaryAccess.cidr');
    const rules = await ingressRules(ec2, groupId);
    return rules.some((r) => r.cidr === cidr && r.port === port && r.description === marker);
  }
}

async function removeIngressRules(ec2: EC2Client, groupId: string, marker: string): Promise<number> {
  const ours = (await ingressRules(ec2, groupId)).filter((r) => r.description === marker);
  for (const rule of ours) {
    await callAws(`remove rule for ${rule.cidr} from ${groupId}`, () =>
      ec2.send(
        new RevokeSecurityGroupIngressCommand({
          GroupId: groupId,
          IpPermissions: [{ IpProtocol: rule.protocol, FromPort: rule.port, ToPort: rule.toPort, IpRanges: [{ CidrIp: rule.cidr }] }],
        }),
        abortable(),
      ),
    );
  }
  return ours.length;
}

async function ingressRules(
  ec2: EC2Client,
  groupId: string,
): Promise<{ protocol: string; port: number; toPort: number; cidr: string; description?: string }[]> {
  const answer = await callAws(`describe security group ${groupId}`, () =>
    ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }), abortable()),
  );
  return (answer.SecurityGroups?.[0]?.IpPermissions ?? []).flatMap((permission) =>
    (permission.IpRanges ?? []).map((range) => ({
      protocol: permission.IpProtocol ?? 'tcp',
      port: permission.FromPort ?? -1,
      toPort: permission.ToPort ?? -1,
      cidr: range.CidrIp ?? '',
      ...(range.Description ? { description: range.Description } : {}),
    })),
  );
}

// --- emulation -------------------------------------------------------------------------------------

/** What RDS does when it creates an instance with a DBName: the database exists, owned by the master user. */
async function createMappedDatabase(instance: InstanceInfo, spec: MappedDatabaseSpec, credentials: CredentialResolver): Promise<void> {
  const location: DatabaseLocation = {
    instance: instance.identifier,
    endpoint: instance.endpoint!,
    database: spec.dbName,
    tls: spec.tls,
    endpointMap: spec.endpointMap,
  };
  const admin = await resolveLogin({ location, credentials: spec.admin, field: spec.adminField }, spec.sources, credentials);
  const { database } = physicalAddress(location);
  await withPg(maintenanceDb(admin), `create database ${database} for ${instance.identifier}`, async (client) => {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(database)}`);
  });
}

async function dropMappedDatabase(
  mapped: { location: DatabaseLocation; admin: Credentials; adminField: string; sources: SecretSources },
  credentials: CredentialResolver,
): Promise<void> {
  const admin = await resolveLogin(
    { location: mapped.location, credentials: mapped.admin, field: mapped.adminField },
    mapped.sources,
    credentials,
  );
  const { database } = physicalAddress(mapped.location);
  await withPg(maintenanceDb(admin), `drop database ${database} of deleted ${mapped.location.instance}`, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`),
  );
}
