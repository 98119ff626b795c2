/** Which Temporal frontend the CLI and worker use, and how: flags, TEMPORAL_* variables, the profile file, the runbooks config. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config.js';
import { temporalTarget } from '../../src/temporal-connection.js';

describe('Temporal connection from client config profiles', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'runbook-profile-'));
    file = join(dir, 'temporal.toml');
    writeFileSync(join(dir, 'ca.pem'), 'not really a CA, but read as given\n');
    writeFileSync(
      file,
      [
        '[profile.default]',
        'address = "default.example:7233"',
        'namespace = "from-default"',
        '[profile.cloud]',
        'address = "ns.tmprl.cloud:7233"',
        'namespace = "ns.acct"',
        'api_key = "secret-key"',
        '[profile.cloud.grpc_meta]',
        'x-team = "ops"',
        '[profile.private]',
        'address = "temporal.internal:7233"',
        '[profile.private.tls]',
        `server_ca_cert_path = "${join(dir, 'ca.pem')}"`,
        'server_name = "temporal.internal"',
        '',
      ].join('\n'),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the named profile: address, namespace, API key (with TLS) and gRPC metadata', () => {
    const target = temporalTarget({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, config: { address: 'config:7233' } });
    assert.deepEqual(target, {
      address: 'ns.tmprl.cloud:7233',
      namespace: 'ns.acct',
      secure: { tls: true, apiKey: 'secret-key', metadata: { 'x-team': 'ops' } },
      profile: 'cloud',
    });
  });

  it('reads the CA and server name of a TLS profile, and the TEMPORAL_* variables override it', () => {
    const target = temporalTarget({
      profile: 'private',
      env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: 'other:7233', TEMPORAL_NAMESPACE: 'ops' },
    });
    assert.equal(target.address, 'other:7233');
    assert.equal(target.namespace, 'ops');
    const tls = target.secure.tls as { serverNameOverride?: string; serverRootCACertificate?: Uint8Array };
    assert.equal(tls.serverNameOverride, 'temporal.internal');
    assert.equal(Buffer.from(tls.serverRootCACertificate!).toString(), 'not really a CA, but read as given\n');
  });

  it("the runbooks config's address beats the unnamed default profile; --address beats both", () => {
    assert.deepEqual(temporalTarget({ env: { TEMPORAL_CONFIG_FILE: file }, config: { address: 'config:7233' } }).address, 'config:7233');
    assert.equal(temporalTarget({ env: { TEMPORAL_CONFIG_FILE: file } }).namespace, 'from-default');
    assert.equal(
      temporalTarget({ address: 'flag:7233', env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' } }).address,
      'flag:7233',
    );
    assert.equal(
      temporalTarget({ env: { TEMPORAL_CONFIG_FILE: file }, config: { profile: 'cloud' } }).profile,
      'cloud',
      'the config may name the profile',
    );
    assert.deepEqual(
      temporalTarget({ env: { TEMPORAL_CONFIG_FILE: join(dir, 'none.toml') } }),
      { address: 'localhost:7233', namespace: 'default', secure: {}, profile: 'default' },
      'no file: plain localhost',
    );
  });

  it('an unknown profile or an unreadable certificate is a config error naming the file', () => {
    assert.throws(
      () => temporalTarget({ profile: 'nosuch', env: { TEMPORAL_CONFIG_FILE: file } }),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message === `Temporal client config ${file} (profile 'nosuch'): Profile 'nosuch' not found in config data`,
    );
    assert.throws(
      () =>
        temporalTarget({
          env: {
            TEMPORAL_CONFIG_FILE: file,
            TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'gone.pem'),
            TEMPORAL_TLS_CLIENT_KEY_PATH: join(dir, 'gone.key'),
          },
        }),
      (err: Error) => err instanceof ConfigError && err.message.includes('gone.pem'),
    );
  });
});
