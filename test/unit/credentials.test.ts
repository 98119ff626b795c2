/** Credentials bound to destinations, env: prefixes and database TLS settings in the environments file. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkWorkerFiles, ConfigError, databaseTls, environment, parseConfig } from '../../src/config.js';
import { destinationProblem, matchesHost, matchesInstance } from '../../src/credentials.js';
import { databaseLoginProblem, databaseLoginSchema } from '../../src/catalog/database-login.js';

const config = (envs: string, top = '') => `${top}
environments:
${envs}`;

const staging = `
  staging:
    aws: { region: us-east-1 }
    credentials:
      regions-db: { ref: 'env:RUNBOOK_SECRET_REGIONS', allowedHosts: ['db.staging.example.com:5432', '*.internal.example.com'] }
      app-db: { ref: 'secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:app#password', allowedInstances: [staging-app, staging-app-next-*] }
  production:
    protected: true
    aws: { region: us-east-1 }
    approvals: { approvers: [alice, bob] }
    credentials:
      regions-db: { ref: 'secretsmanager:prod-regions#password', allowedInstances: [prod-regions] }`;

function refused(text: string): string {
  try {
    parseConfig(text, 'runbooks.config.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  return assert.fail('the config was accepted');
}

describe('credentials bound to destinations', () => {
  it('loads credentials, the env: prefix and verify-full by default, with the RDS bundle as the default CA', () => {
    const parsed = parseConfig(config(staging, 'rdsCaBundle: /etc/ssl/rds-global-bundle.pem'));
    const env = environment(parsed, 'staging');
    assert.equal(env.secretEnvPrefix, 'RUNBOOK_SECRET_');
    assert.deepEqual(databaseTls(parsed, env), { mode: 'verify-full', ca: '/etc/ssl/rds-global-bundle.pem' });
    assert.deepEqual(env.credentials['app-db']?.allowedInstances, ['staging-app', 'staging-app-next-*']);
  });

  it('refuses env: references outside the prefix, a credential without or with both destination lists, and cleartext on protected', () => {
    assert.match(
      refused(
        config(
          `  dev:\n    aws: { region: us-east-1 }\n    credentials:\n      db: { ref: 'env:AWS_SECRET_ACCESS_KEY', allowedHosts: [db] }`,
        ),
      ),
      /environments\.dev\.credentials\.db\.ref: env:AWS_SECRET_ACCESS_KEY: env: references must name a variable starting with RUNBOOK_SECRET_/,
    );
    assert.match(
      refused(config(`  dev:\n    aws: { region: us-east-1 }\n    terraform: { credentials: { token: 'env:HOME' } }`)),
      /environments\.dev\.terraform\.credentials\.token: env:HOME: env: references must name a variable starting with RUNBOOK_SECRET_/,
    );
    assert.match(
      refused(config(`  dev:\n    aws: { region: us-east-1 }\n    credentials:\n      db: { ref: 'env:RUNBOOK_SECRET_DB' }`)),
      /environments\.dev\.credentials\.db: needs exactly one of allowedHosts or allowedInstances/,
    );
    assert.match(
      refused(
        config(
          `  dev:\n    aws: { region: us-east-1 }\n    credentials:\n      db: { ref: 'env:RUNBOOK_SECRET_DB', allowedHosts: [a], allowedInstances: [b] }`,
        ),
      ),
      /environments\.dev\.credentials\.db: needs exactly one of allowedHosts or allowedInstances/,
    );
    assert.match(
      refused(config(`  dev:\n    aws: { region: us-east-1 }\n    credentials:\n      db: { ref: 'hunter2', allowedHosts: [a] }`)),
      /credentials\.db\.ref: expected a secret reference/,
    );
    assert.match(
      refused(
        config(
          `  prod:\n    protected: true\n    aws: { region: us-east-1 }\n    approvals: { approvers: [alice] }\n    databaseTls: { mode: disable }`,
        ),
      ),
      /environments\.prod\.databaseTls\.mode: disable is not allowed on a protected environment/,
    );
    assert.match(
      refused(config(`  dev:\n    aws: { region: us-east-1 }\n    emulatedRds: { host: 127.0.0.1, port: 5432 }`)),
      /environments\.dev\.emulatedRds: only for emulated environments/,
    );
  });

  it('matches hosts label by label (with an optional port) and instances exactly or by prefix', () => {
    assert.ok(matchesHost('db.example.com', 'DB.example.com', 5432));
    assert.ok(matchesHost('db.example.com:5432', 'db.example.com', 5432));
    assert.ok(!matchesHost('db.example.com:5432', 'db.example.com', 5433));
    assert.ok(matchesHost('*.internal.example.com', 'a.internal.example.com', 1));
    assert.ok(!matchesHost('*.internal.example.com', 'a.b.internal.example.com', 1), '* is one label');
    assert.ok(!matchesHost('db.example.com', 'db.example.com.evil.net', 5432));
    assert.ok(matchesInstance('app-next-*', 'app-next-2'));
    assert.ok(!matchesInstance('app', 'app-2'));
    const credential = { ref: 'env:RUNBOOK_SECRET_X', allowedInstances: ['app'] };
    assert.match(
      destinationProblem(credential, 'x', { host: 'app.example.com', port: 5432 }, 'database.credential') ?? '',
      /may only be sent to RDS instances app, not to host app\.example\.com:5432 \(not an RDS instance\)/,
    );
  });

  it('refuses a login to a host its credential is not bound to, a host on a protected environment, and an unknown credential', () => {
    const parsed = parseConfig(config(staging));
    const login = (fields: Record<string, unknown>) =>
      databaseLoginSchema.parse({ database: 'districtbuilder', username: 'app', credential: 'regions-db', ...fields });
    const stagingEnv = environment(parsed, 'staging');
    const production = environment(parsed, 'production');
    assert.equal(databaseLoginProblem(login({ host: 'db.staging.example.com' }), stagingEnv), null);
    assert.equal(databaseLoginProblem(login({ host: 'x.internal.example.com', port: 6432 }), stagingEnv), null);
    assert.match(
      databaseLoginProblem(login({ host: 'db.staging.example.com', port: 6543 }), stagingEnv) ?? '',
      /database\.credential: credential 'regions-db' may only be sent to db\.staging\.example\.com:5432, \*\.internal\.example\.com, not to db\.staging\.example\.com:6543/,
    );
    assert.match(databaseLoginProblem(login({ host: 'attacker.example.net' }), stagingEnv) ?? '', /not to attacker\.example\.net:5432/);
    assert.match(
      databaseLoginProblem(login({ host: 'db.prod.example.com' }), production) ?? '',
      /database\.host: production is protected, so database hosts come only from the RDS API; give database\.instance/,
    );
    assert.equal(databaseLoginProblem(login({ instance: 'prod-regions' }), production), null);
    assert.match(
      databaseLoginProblem(login({ instance: 'other-db' }), production) ?? '',
      /may only be sent to RDS instances prod-regions, not to RDS instance other-db/,
    );
    assert.match(
      databaseLoginProblem(login({ instance: 'prod-regions', credential: 'app-db' }), production) ?? '',
      /database\.credential: no credential 'app-db' on production \(credentials in the worker's config: regions-db\)/,
    );
    assert.throws(
      () =>
        databaseLoginSchema.parse({ database: 'd', username: 'u', credential: 'regions-db', host: 'a', password: 'env:RUNBOOK_SECRET_X' }),
      /Unrecognized key\(s\) in object: 'password'/,
    );
  });

  it('checks CA bundles when the worker starts: unreadable, not PEM, or a broken certificate is a config error naming file, field and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ca-test-'));
    try {
      const notPem = join(dir, 'not-pem.txt');
      writeFileSync(notPem, 'hello\n');
      const broken = join(dir, 'broken.pem');
      writeFileSync(broken, '# bundle\n\n-----BEGIN CERTIFICATE-----\nTUlJQm9vcHM=\n-----END CERTIFICATE-----\n');
      const withCa = (ca: string) =>
        parseConfig(config(`  dev:\n    aws: { region: us-east-1 }\n    databaseTls: { ca: ${ca} }`), '/etc/runbooks.yaml');
      assert.throws(
        () => checkWorkerFiles(withCa(join(dir, 'missing.pem'))),
        (err: Error) =>
          err instanceof ConfigError &&
          /config \/etc\/runbooks\.yaml: environments\.dev\.databaseTls\.ca: CA bundle .*missing\.pem cannot be read: ENOENT/.test(
            err.message,
          ),
      );
      assert.throws(
        () => checkWorkerFiles(withCa(notPem)),
        /environments\.dev\.databaseTls\.ca: CA bundle .*not-pem\.txt holds no PEM certificate/,
      );
      assert.throws(() => checkWorkerFiles(withCa(broken)), /CA bundle .*broken\.pem line 3: not a valid certificate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
