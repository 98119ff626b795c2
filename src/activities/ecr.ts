/**
 * ECR: which image a tag points at, and moving a tag (the seed's "deploy job":
 * tag the commit's image `prod`). A tag moves by PutImage of the image's own
 * manifest under the new tag, as `aws ecr put-image` does; a tag already on
 * that digest counts as moved, so a retry does no harm.
 */
import { BatchGetImageCommand, DescribeImagesCommand, DescribeRepositoriesCommand, ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import type { AwsConnection } from '../config.js';
import { abortable, awsFailure, callAws, invalidInput } from './aws.js';

export type EcrClientFactory = (connection: AwsConnection) => ECRClient;

const clients = new Map<string, ECRClient>();

export const ecrClients: EcrClientFactory = (connection) => {
  const key = JSON.stringify([connection.region, connection.endpoint ?? null, connection.profile ?? null]);
  let client = clients.get(key);
  if (!client) {
    client = new ECRClient({
      region: connection.region,
      ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
      ...(connection.profile ? { profile: connection.profile } : {}),
    });
    clients.set(key, client);
  }
  return client;
};

export interface RepositoryImages {
  repositoryUri: string;
  /** Digest the commit's tag points at; null when there is no such image. */
  commitDigest: string | null;
  /** Digest the prod tag points at now, and every tag of that image (its commit among them). */
  prodDigest: string | null;
  prodTags: string[];
}

export function createEcrActivities(deps: { ecr?: EcrClientFactory } = {}) {
  const ecr = deps.ecr ?? ecrClients;

  return {
    async inspectImages({
      aws,
      repository,
      commit,
      prodTag,
    }: {
      aws: AwsConnection;
      repository: string;
      commit: string;
      prodTag: string;
    }): Promise<RepositoryImages> {
      const client = ecr(aws);
      const { repositories = [] } = await callAws(
        `describe repository ${repository}`,
        () => client.send(new DescribeRepositoriesCommand({ repositoryNames: [repository] }), abortable()),
        'repository',
      ).catch((err: Error) => {
        throw err.message.includes('RepositoryNotFoundException') ? invalidInput('repository', `no ECR repository ${repository}`) : err;
      });
      const [commitImage, prodImage] = await Promise.all([imageByTag(client, repository, commit), imageByTag(client, repository, prodTag)]);
      return {
        repositoryUri: repositories[0]!.repositoryUri!,
        commitDigest: commitImage?.digest ?? null,
        prodDigest: prodImage?.digest ?? null,
        prodTags: prodImage?.tags ?? [],
      };
    },

    /** The image `repository:tag` names; null when the repository or the tag does not exist. */
    async publishedImage({
      aws,
      repository,
      tag,
    }: {
      aws: AwsConnection;
      repository: string;
      tag: string;
    }): Promise<{ digest: string } | null> {
      const image = await imageByTag(ecr(aws), repository, tag);
      return image ? { digest: image.digest } : null;
    },

    /** Points `tag` at the image with `digest`. */
    async moveTag({
      aws,
      repository,
      tag,
      digest,
    }: {
      aws: AwsConnection;
      repository: string;
      tag: string;
      digest: string;
    }): Promise<{ moved: boolean }> {
      const client = ecr(aws);
      const { images = [] } = await callAws(`get image ${digest} of ${repository}`, () =>
        client.send(new BatchGetImageCommand({ repositoryName: repository, imageIds: [{ imageDigest: digest }] }), abortable()),
      );
      const image = images[0];
      if (!image?.imageManifest) throw invalidInput('commit', `${repository} has no image ${digest}`);
      try {
        await client.send(
          new PutImageCommand({
            repositoryName: repository,
            imageTag: tag,
            imageManifest: image.imageManifest,
            ...(image.imageManifestMediaType ? { imageManifestMediaType: image.imageManifestMediaType } : {}),
          }),
          abortable(),
        );
        return { moved: true };
      } catch (err) {
        if ((err as Error).name === 'ImageAlreadyExistsException') return { moved: false };
        throw awsFailure(err, `tag ${digest} of ${repository} as ${tag}`);
      }
    },
  };
}

export type EcrActivities = ReturnType<typeof createEcrActivities>;

async function imageByTag(client: ECRClient, repository: string, tag: string): Promise<{ digest: string; tags: string[] } | null> {
  try {
    const { imageDetails = [] } = await client.send(
      new DescribeImagesCommand({ repositoryName: repository, imageIds: [{ imageTag: tag }] }),
      abortable(),
    );
    const image = imageDetails[0];
    return image?.imageDigest ? { digest: image.imageDigest, tags: image.imageTags ?? [] } : null;
  } catch (err) {
    if ((err as Error).name === 'ImageNotFoundException' || (err as Error).name === 'RepositoryNotFoundException') return null;
    throw awsFailure(err, `find ${repository}:${tag}`);
  }
}
