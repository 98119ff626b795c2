/** The environments file: validated on load, every error naming its field. */
import assert from 'node:assert/strict';
import { runPolicy, environment, parseConfig, ConfigError } from '../../src/config.js';
import { parseDuration } from '../../src/duration.js';

const valid = `
environments:
  staging:
    aws: { region: us-east-1 }
  production:
    protected: true
    aws: { region: us-east-1, profile: prod }
    approvals:
      approvers: [alice, bob]
      timeout: 2h
      timeouts: { delete-old: 30m }
      webhook: https://hooks.example.com/runbooks
    runbooks:
      rolling-restart: { service: ProductionApp }
`;

describe('environments config', () => {
  it('loads environments with defaults filled in', () => {
    const config = parseConfig(valid, 'runbooks.config.yaml');
    const staging = environment(config, 'staging');
    assert.deepEqual(staging.approvals.approvers, ['*']);
    assert.equal(staging.approvals.allowSelfApproval, false, 'self-approval is off unless allowed');
    const policy = runPolicy(environment(config, 'production'));
    // The webhook stays in the worker's config: the policy a run records only says that one is set.
    assert.deepEqual(policy, {
      approvers: ['alice', 'bob'],
      allowSelfApproval: false,
      protected: true,
      timeoutMs: 2 * 3_600_000,
      timeoutsMs: { 'delete-old': 30 * 60_000 },
      notify: true,
      notifications: [{ webhook: 'approvals.webhook', events: ['waiting'] }],
    });
    assert.deepEqual(environment(config, 'production').runbooks['rolling-restart'], { service: 'ProductionApp' });
  });

  it('names the field and the rule of each error', () => {
    const broken = `
environments:
  production:
    aws: { regoin: us-east-1 }
    approvals: { approvers: [], timeout: soon }
`;
    assert.throws(
      () => parseConfig(broken, 'c.yaml'),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^config c\.yaml: /);
        assert.match(err.message, /environments\.production\.aws\.region: Required/);
        assert.match(err.message, /environments\.production\.aws: Unrecognized key\(s\) in object: 'regoin'/);
        assert.match(err.message, /environments\.production\.approvals\.approvers: Array must contain at least 1 element/);
        assert.match(err.message, /environments\.production\.approvals\.timeout: 'soon' is not a duration/);
        return true;
      },
    );
  });

  it('refuses a protected environment that anyone, or the requester alone, may approve', () => {
    const loose = `
environments:
  production:
    protected: true
    aws: { region: us-east-1 }
    approvals: { approvers: ['*', alice], allowSelfApproval: true }
`;
    assert.throws(
      () => parseConfig(loose, 'loose.yaml'),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          /environments\.production\.approvals\.approvers: a protected environment needs named approvers, not '\*'/,
        );
        assert.match(err.message, /environments\.production\.approvals\.allowSelfApproval: must be false on a protected environment/);
        return true;
      },
    );
    assert.deepEqual(
      runPolicy(environment(parseConfig(valid), 'staging')).approvers,
      ['*'],
      'unprotected environments may leave approval open',
    );
  });

  it('routes run events to named webhooks, and refuses a route to a webhook it does not name', () => {
    const routed = parseConfig(`
webhooks:
  chat: { url: 'env:RUNBOOK_SECRET_CHAT_URL', format: slack }
  pager: { url: 'https://pager.example.com/hook' }
environments:
  production:
    protected: true
    aws: { region: us-east-1 }
    approvals: { approvers: [alice, bob] }
    notify:
      - { webhook: chat }
      - { webhook: pager, events: [failed, rolled-back] }
`);
    assert.deepEqual(runPolicy(environment(routed, 'production')).notifications, [
      {
        webhook: 'chat',
        events: ['started', 'waiting', 'reminder', 'decided', 'succeeded', 'failed', 'rolled-back', 'cancelled', 'frozen'],
      },
      { webhook: 'pager', events: ['failed', 'rolled-back'] },
    ]);
    assert.throws(
      () =>
        parseConfig(`
environments:
  staging:
    aws: { region: us-east-1 }
    notify: [{ webhook: chat, events: [started, exploded] }]
`),
      (err: Error) => {
        assert.match(err.message, /environments\.staging\.notify\.0\.events\.1: Invalid enum value/);
        return true;
      },
    );
    assert.throws(
      () =>
        parseConfig(`
environments:
  staging:
    aws: { region: us-east-1 }
    notify: [{ webhook: chat }]
`),
      /environments\.staging\.notify\.0\.webhook: no webhook named 'chat' under webhooks \(known: none\)/,
    );
  });

  it('refuses an empty file and YAML that does not parse', () => {
    assert.throws(() => parseConfig('environments: {}'), /environments: needs at least one environment/);
    assert.throws(() => parseConfig('environments: [\n'), /is not valid YAML/);
  });

  it('names the known environments when asked for another', () => {
    assert.throws(
      () => environment(parseConfig(valid, 'x.yaml'), 'prod'),
      /unknown environment 'prod' \(known in .*x\.yaml: staging, production\)/,
    );
  });

  it('reads durations as operators write them', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('45m'), 2_700_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration(250), 250);
    assert.throws(() => parseDuration('0s'), /positive/);
    assert.throws(() => parseDuration('5 minutes'), /not a duration/);
  });
});
