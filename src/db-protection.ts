/**
 * What a replacement database must keep of the old one's protection (issue
 * 11.3): the settings the new instance lacks, in words an approver can act
 * on. Pure, so the workflow can word its `cutover` prompt with it.
 */
import type { InstanceInfo, InstanceProtection } from './activities/rds.js';

/** The protections `created` lacks compared with `old`; empty when it has them all (or either was read before protection was). */
export function protectionGaps(old: InstanceInfo, created: InstanceInfo): string[] {
  const was = old.protection;
  const now = created.protection;
  if (!was || !now) return [];
  const gaps: string[] = [];
  const lost = (what: string, had: boolean, has: boolean) =>
    had && !has && gaps.push(`${what} (${old.identifier} has it, ${created.identifier} not)`);
  lost('storage encryption', was.storageEncrypted, now.storageEncrypted);
  if (was.storageEncrypted && now.storageEncrypted && was.kmsKeyId !== now.kmsKeyId)
    gaps.push(`the KMS key ${was.kmsKeyId} (${created.identifier} uses ${now.kmsKeyId})`);
  lost('deletion protection', was.deletionProtection, now.deletionProtection);
  lost('Multi-AZ', was.multiAz, now.multiAz);
  lost('IAM database authentication', was.iamAuth, now.iamAuth);
  if (now.backupRetentionDays < was.backupRetentionDays)
    gaps.push(`backup retention of ${was.backupRetentionDays} days (${created.identifier} keeps ${now.backupRetentionDays})`);
  differs(gaps, 'parameter group', was, now, 'parameterGroup', created.identifier);
  differs(gaps, 'option group', was, now, 'optionGroup', created.identifier);
  const missingGroups = old.securityGroupIds.filter((g) => !created.securityGroupIds.includes(g));
  if (missingGroups.length) gaps.push(`security groups ${missingGroups.join(', ')}`);
  if (old.subnetGroup && old.subnetGroup !== created.subnetGroup)
    gaps.push(`subnet group ${old.subnetGroup} (${created.identifier} is in ${created.subnetGroup ?? 'none'})`);
  return gaps;
}

/** A custom group the new instance does not use (default groups follow the engine version, so they are not compared). */
function differs(
  gaps: string[],
  what: string,
  was: InstanceProtection,
  now: InstanceProtection,
  key: 'parameterGroup' | 'optionGroup',
  createdId: string,
): void {
  const group = was[key];
  if (!group || /^default[.:]/.test(group) || group === now[key]) return;
  gaps.push(`${what} ${group} (${createdId} uses ${now[key] ?? 'none'})`);
}
