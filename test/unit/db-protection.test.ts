/** What db-migration's `cutover` prompt names when the new instance is less protected than the old (issue 11.3). */
import assert from 'node:assert/strict';
import type { InstanceInfo, InstanceProtection } from '../../src/activities/rds.js';
import { protectionGaps } from '../../src/db-protection.js';

const protection: InstanceProtection = {
  storageEncrypted: true,
  kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/old',
  deletionProtection: true,
  multiAz: true,
  parameterGroup: 'app-pg15',
  optionGroup: 'default:postgres-15',
  backupRetentionDays: 7,
  iamAuth: true,
};

const instance = (
  identifier: string,
  overrides: Partial<InstanceInfo> = {},
  protectionOverrides: Partial<InstanceProtection> = {},
): InstanceInfo => ({
  identifier,
  status: 'available',
  engine: 'postgres',
  engineVersion: '15.8',
  instanceClass: 'db.t3.micro',
  allocatedStorageGb: 20,
  endpoint: { host: `${identifier}.rds`, port: 5432 },
  dbName: 'appdb',
  masterUsername: 'postgres',
  publiclyAccessible: false,
  securityGroupIds: ['sg-1', 'sg-2'],
  subnetGroup: 'private',
  tags: {},
  protection: { ...protection, ...protectionOverrides },
  ...overrides,
});

describe('protectionGaps', () => {
  it('finds nothing when the new instance carries every setting', () => {
    assert.deepEqual(protectionGaps(instance('old'), instance('new')), []);
  });

  it('names each protection the new instance lacks, with both values', () => {
    const gaps = protectionGaps(
      instance('old'),
      instance(
        'new',
        { securityGroupIds: ['sg-1'], subnetGroup: 'default' },
        {
          kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/other',
          deletionProtection: false,
          multiAz: false,
          parameterGroup: 'default.postgres16',
          backupRetentionDays: 1,
          iamAuth: false,
        },
      ),
    );
    assert.deepEqual(gaps, [
      'the KMS key arn:aws:kms:us-east-1:123456789012:key/old (new uses arn:aws:kms:us-east-1:123456789012:key/other)',
      'deletion protection (old has it, new not)',
      'Multi-AZ (old has it, new not)',
      'IAM database authentication (old has it, new not)',
      'backup retention of 7 days (new keeps 1)',
      'parameter group app-pg15 (new uses default.postgres16)',
      'security groups sg-2',
      'subnet group private (new is in default)',
    ]);
    assert.deepEqual(protectionGaps(instance('old'), instance('new', {}, { storageEncrypted: false, kmsKeyId: null })), [
      'storage encryption (old has it, new not)',
    ]);
  });

  it('does not count a default group or more protection as a gap', () => {
    const plain = instance(
      'old',
      {},
      {
        storageEncrypted: false,
        kmsKeyId: null,
        deletionProtection: false,
        multiAz: false,
        iamAuth: false,
        parameterGroup: 'default.postgres15',
        backupRetentionDays: 1,
      },
    );
    assert.deepEqual(
      protectionGaps(plain, instance('new', {}, { parameterGroup: 'default.postgres16', optionGroup: 'default:postgres-16' })),
      [],
    );
  });

  it('compares nothing for instances read before protection was (replayed runs)', () => {
    assert.deepEqual(protectionGaps({ ...instance('old'), protection: undefined }, instance('new', {}, { storageEncrypted: false })), []);
  });
});
