/**
 * Image digests for the sandbox's ECS scheduler simulator. ECS resolves a
 * service's image tag (`<repo>:prod`) to a digest when a deployment starts,
 * and every task of that deployment runs that digest; moto's ECS does
 * neither. This resolves the tag through moto's ECR once per deployment (a
 * forced new deployment gets a new ID), remembers each task's digest in a
 * tag the simulator reads back, and records it where the sandbox's worker
 * reads task facts (see activities/task-facts.ts). Digests marked bad make
 * their tasks fail their health checks (a broken release); digests marked
 * to migrate on start run their image's pending migrations when a task of
 * theirs starts (an app that migrates at boot).
 */
import { DescribeImagesCommand, type ECRClient } from '@aws-sdk/client-ecr';
import { DescribeTaskDefinitionCommand, type ECSClient, type Service } from '@aws-sdk/client-ecs';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { recordedTaskKey, type RecordedTask } from '../../activities/task-facts.js';
import type { AppMigrations } from './app-migrations.js';

/** The simulator's own memory of the digest a task runs. */
export const DIGEST_TAG = 'simulatedDigest';

export interface Rollout {
  digest: string;
  container: string;
}

export class ServiceImages {
  private readonly rollouts = new Map<string, Rollout & { deploymentId: string }>();
  private readonly bad = new Set<string>();
  private readonly migratingOnStart = new Set<string>();

  constructor(
    private readonly clients: { ecr: ECRClient; s3: S3Client },
    private readonly recordsBucket: string,
    private readonly migrations?: { catalog: AppMigrations; databaseUrl: string; commitOf: (digest: string) => string | undefined },
  ) {}

  /** Tasks of this digest started from now on run the image's pending migrations first. */
  migrateOnStart(digest: string, on = true): void {
    if (on) this.migratingOnStart.add(digest);
    else this.migratingOnStart.delete(digest);
  }

  /** Tasks of this digest started from now on fail their health checks. */
  markBad(digest: string, bad = true): void {
    if (bad) this.bad.add(digest);
    else this.bad.delete(digest);
  }

  isBad(digest: string | undefined): boolean {
    return digest !== undefined && this.bad.has(digest);
  }

  /** The digest the service's current deployment runs; undefined for services whose image is not in ECR. */
  async rolloutOf(ecs: ECSClient, service: Service): Promise<Rollout | undefined> {
    const deploymentId = service.deployments?.[0]?.id ?? '';
    const known = this.rollouts.get(service.serviceArn!);
    if (known && known.deploymentId === deploymentId) return known;
    const { taskDefinition } = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: service.taskDefinition! }));
    const container = taskDefinition?.containerDefinitions?.[0];
    const ref = /\.dkr\.ecr\.[^/]+\/([^:@]+):(.+)$/.exec(container?.image ?? '');
    if (!container?.name || !ref) return undefined;
    const { imageDetails = [] } = await this.clients.ecr.send(
      new DescribeImagesCommand({ repositoryName: ref[1], imageIds: [{ imageTag: ref[2] }] }),
    );
    const digest = imageDetails[0]?.imageDigest;
    if (!digest) return undefined;
    const rollout = { deploymentId, digest, container: container.name };
    this.rollouts.set(service.serviceArn!, rollout);
    return rollout;
  }

  /** A task of the rollout started: record its digest, and migrate if its image does so at boot. */
  async started(taskArn: string, rollout: Rollout): Promise<void> {
    await this.record(taskArn, rollout);
    const commit = this.migrations?.commitOf(rollout.digest);
    if (commit && this.migratingOnStart.has(rollout.digest)) await this.migrations!.catalog.run(commit, this.migrations!.databaseUrl);
  }

  /** Where the sandbox's worker reads the digest a task runs. */
  async record(taskArn: string, rollout: Rollout): Promise<void> {
    const record: RecordedTask = { containers: { [rollout.container]: { imageDigest: rollout.digest } } };
    await this.clients.s3.send(
      new PutObjectCommand({
        Bucket: this.recordsBucket,
        Key: recordedTaskKey(taskArn),
        Body: JSON.stringify(record),
        ContentType: 'application/json',
      }),
    );
  }
}
