/** db-migration's `deployPipeline` input: validated by the catalog's schema (exit 2 naming the field), carried to the run. */
import assert from 'node:assert/strict';
import { dbMigrationRunbook } from '../../src/catalog/db-migration.js';
import { formatIssues, parseConfig, environment } from '../../src/config.js';
import type { DbMigrationParams } from '../../src/workflows/db-migration.js';

const minimal = {
  sourceInstance: 'app-db',
  database: 'appdb',
  newInstance: { identifier: 'app-db-2' },
  writers: [{ cluster: 'main', service: 'api' }],
  backup: { bucket: 'db-backups' },
  credentials: { app: { username: 'app', credential: 'app-db' }, admin: { username: 'postgres', credential: 'app-db-admin' } },
};

function problems(deployPipeline: unknown): string {
  const parsed = dbMigrationRunbook.params.safeParse({ ...minimal, deployPipeline });
  return parsed.success ? 'accepted' : formatIssues(parsed.error);
}

describe("db-migration's deployPipeline input", () => {
  it('names the field and the rule of a bad pipeline or stage', () => {
    assert.match(
      problems({ name: 'app:deploy', stage: 'Deploy' }),
      /^deployPipeline\.name: a CodePipeline pipeline name: letters, digits and \. @ _ -/,
    );
    assert.match(
      problems({ name: 'app-deploy', stage: 'Deploy now' }),
      /^deployPipeline\.stage: must not contain quotes, semicolons, backslashes or whitespace/,
    );
    assert.match(problems({ name: 'x'.repeat(101), stage: 'Deploy' }), /^deployPipeline\.name: .*at most 100 characters/);
    assert.match(problems({ name: 'app-deploy' }), /^deployPipeline\.stage: Required/);
    assert.match(
      problems({ name: 'app-deploy', stage: 'Deploy', transition: 'Outbound' }),
      /^deployPipeline: Unrecognized key\(s\) in object: 'transition'/,
    );
    assert.equal(problems(undefined), 'accepted', 'optional: no pipeline, nothing paused');
  });

  it('is carried, as given, into the parameters the run gets', () => {
    const config = parseConfig(
      [
        'environments:',
        '  staging:',
        '    aws: { region: us-east-1 }',
        '    credentials:',
        '      app-db: { ref: "env:RUNBOOK_SECRET_APP", allowedInstances: ["app-db*"] }',
        '      app-db-admin: { ref: "env:RUNBOOK_SECRET_ADMIN", allowedInstances: ["app-db*"] }',
      ].join('\n'),
    );
    const env = environment(config, 'staging');
    const params = dbMigrationRunbook.params.parse({ ...minimal, deployPipeline: { name: 'app-deploy', stage: 'Deploy' } });
    assert.equal(dbMigrationRunbook.check?.(params, env), null);
    assert.deepEqual((dbMigrationRunbook.prepare!(params, env) as DbMigrationParams).deployPipeline, {
      name: 'app-deploy',
      stage: 'Deploy',
    });
  });
});
