/**
 * SSHSIG verification in node against signatures made by OpenSSH's own
 * `ssh-keygen -Y sign` (ed25519, ECDSA, RSA), the allowed-signers parser, the
 * canonical messages and what the worker refuses: another key, another wait,
 * another run, another comment, an expired or far-future signature.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, environment, environmentSigners, loadConfig, parseConfig, runPolicy } from '../../src/config.js';
import { parseAllowedSigners, SignersFileError } from '../../src/signing/allowed-signers.js';
import { decisionMessage, startMessage } from '../../src/signing/canonical.js';
import { findSigningKey, signMessage } from '../../src/signing/sign.js';
import { parseSshSignature, verifySshSignature } from '../../src/signing/sshsig.js';
import { verifyDecision, verifyStart } from '../../src/signing/verify.js';
import { waitUntil } from '../helpers/wait-until.js';

const keygen = (path: string, type: string, comment: string) =>
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', comment, '-f', path]);
const publicLine = (path: string) => readFileSync(`${path}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');

describe('signed starts and decisions', function () {
  this.timeout(60_000);
  let dir: string;
  let alice: string;
  let bob: string;
  let mallory: string;
  let signersFile: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'runbook-signing-'));
    [alice, bob, mallory] = ['alice', 'bob', 'mallory'].map((n) => join(dir, n)) as [string, string, string];
    keygen(alice, 'ed25519', 'alice');
    keygen(bob, 'ed25519', 'bob');
    keygen(mallory, 'ed25519', 'mallory');
    signersFile = join(dir, 'allowed_signers');
    writeFileSync(
      signersFile,
      `# who may sign here\nalice@example.com ${publicLine(alice)} laptop\nbob@example.com namespaces="temporal-runbooks,git" ${publicLine(bob)}\n`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const soon = () => new Date(Date.now() + 5 * 60_000).toISOString();
  const signers = () => parseAllowedSigners(readFileSync(signersFile, 'utf8'), signersFile);
  const wait = {
    workflowId: 'ledger-swap:guarded:books',
    runId: 'run-1',
    waitId: 'delete-old#1',
    decision: 'approved' as const,
    comment: 'looks right',
  };

  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    it(`verifies an ssh-keygen ${type} signature, and not over another message or namespace`, async () => {
      const key = join(dir, `k-${type}`);
      keygen(key, type, type);
      const signature = await signMessage({ kind: 'file', path: key }, 'the message');
      const parsed = parseSshSignature(signature);
      assert.equal(parsed.publicKey.toString('base64'), publicLine(key).split(' ')[1]);
      assert.equal(verifySshSignature(parsed, 'the message'), true);
      assert.equal(verifySshSignature(parsed, 'the message!'), false);
      const other = execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'git', '-f', key], { input: 'the message' }).toString();
      assert.equal(verifySshSignature(parseSshSignature(other), 'the message'), false, 'a git signature is no runbook signature');
    });
  }

  it('builds the documented canonical messages', () => {
    const start = startMessage({
      runbook: 'ledger-swap',
      env: 'guarded',
      params: { name: 'books', items: 3 },
      requestId: 'r1',
      expiresAt: '2026-01-01T00:00:00.000Z',
    });
    assert.match(
      start,
      /^\{"env":"guarded","expiresAt":"2026-01-01T00:00:00.000Z","paramsHash":"[0-9a-f]{64}","requestId":"r1","runbook":"ledger-swap"\}$/,
    );
    assert.equal(
      start,
      startMessage({
        runbook: 'ledger-swap',
        env: 'guarded',
        params: { items: 3, name: 'books' },
        requestId: 'r1',
        expiresAt: '2026-01-01T00:00:00.000Z',
      }),
      'key order does not matter',
    );
    const decision = decisionMessage({ ...wait, expiresAt: '2026-01-01T00:00:00.000Z' });
    assert.match(
      decision,
      /^\{"commentHash":"[0-9a-f]{64}","decision":"approved","expiresAt":"[^"]+","runId":"run-1","waitId":"delete-old#1","workflowId":"ledger-swap:guarded:books"\}$/,
    );
  });

  it('gives the verified principal of a decision, and refuses it on another wait, run, decision or comment', async () => {
    const expiresAt = soon();
    const signature = await signMessage({ kind: 'file', path: bob }, decisionMessage({ ...wait, expiresAt }));
    assert.equal(verifyDecision(signers(), { ...wait, expiresAt, signature }), 'bob@example.com');
    assert.equal(verifyDecision(signers(), { ...wait, expiresAt, signature, by: 'Bob@Example.com' }), 'bob@example.com');
    for (const other of [
      { waitId: 'delete-old#2' },
      { runId: 'run-2' },
      { workflowId: 'ledger-swap:guarded:maps' },
      { decision: 'rejected' as const },
      { comment: 'fine' },
    ]) {
      assert.throws(
        () => verifyDecision(signers(), { ...wait, ...other, expiresAt, signature }),
        /does not verify over this decision/,
        JSON.stringify(other),
      );
    }
    assert.throws(
      () => verifyDecision(signers(), { ...wait, expiresAt, signature, by: 'alice@example.com' }),
      /claims to be by 'alice@example.com' but is signed with the key of bob@example.com/,
    );
  });

  it('refuses a key not in the signers file, a missing, expired or far-future signature', async () => {
    const expiresAt = soon();
    const byMallory = await signMessage({ kind: 'file', path: mallory }, decisionMessage({ ...wait, expiresAt }));
    assert.throws(
      () => verifyDecision(signers(), { ...wait, expiresAt, signature: byMallory }),
      /key SHA256:\S+ is not in the signers file/,
    );
    assert.throws(() => verifyDecision(signers(), { ...wait, expiresAt }), /unsigned decision/);
    const past = new Date(Date.now() - 1000).toISOString();
    const expired = await signMessage({ kind: 'file', path: bob }, decisionMessage({ ...wait, expiresAt: past }));
    assert.throws(() => verifyDecision(signers(), { ...wait, expiresAt: past, signature: expired }), /the signature expired at/);
    const far = new Date(Date.now() + 24 * 3_600_000).toISOString();
    const standing = await signMessage({ kind: 'file', path: bob }, decisionMessage({ ...wait, expiresAt: far }));
    assert.throws(() => verifyDecision(signers(), { ...wait, expiresAt: far, signature: standing }), /more than 60 minutes ahead/);
  });

  it('verifies a start over its params as sent', async () => {
    const claim = { runbook: 'ledger-swap', env: 'guarded', params: { name: 'books' }, requestId: 'r1', expiresAt: soon() };
    const signature = await signMessage({ kind: 'file', path: alice }, startMessage(claim));
    assert.equal(verifyStart(signers(), { ...claim, signature }), 'alice@example.com');
    assert.throws(() => verifyStart(signers(), { ...claim, params: { name: 'maps' }, signature }), /does not verify over this start/);
  });

  it('honours namespaces and validity windows in the signers file', async () => {
    const limited = parseAllowedSigners(
      `bob@example.com namespaces="git" ${publicLine(bob)}\nalice@example.com valid-before="20200101Z" ${publicLine(alice)}\n`,
    );
    const expiresAt = soon();
    const byBob = await signMessage({ kind: 'file', path: bob }, decisionMessage({ ...wait, expiresAt }));
    const byAlice = await signMessage({ kind: 'file', path: alice }, decisionMessage({ ...wait, expiresAt }));
    assert.throws(() => verifyDecision(limited, { ...wait, expiresAt, signature: byBob }), /may not sign temporal-runbooks now/);
    assert.throws(() => verifyDecision(limited, { ...wait, expiresAt, signature: byAlice }), /may not sign temporal-runbooks now/);
  });

  it('names the file and line of a malformed signers entry', () => {
    const key = publicLine(alice);
    const cases: [string, RegExp][] = [
      [`alice ssh-dss AAAAB3NzaC1kc3M=`, /line 2: key type 'ssh-dss' is not supported/],
      [`alice ssh-ed25519 not*base64`, /line 2: the key is not valid base64/],
      [`*@example.com ${key}`, /line 2: principal '\*@example.com' is a pattern/],
      [`alice cert-authority ${key}`, /line 2: cert-authority lines are not supported/],
      [`alice no-touch-required ${key}`, /line 2: unknown option 'no-touch-required'/],
      [`alice ssh-rsa ${key.split(' ')[1]}`, /line 2: the key is a ssh-ed25519 key, but the line says ssh-rsa/],
      [`alice`, /line 2: expected `principals \[options\] keytype base64-key`/],
    ];
    for (const [line, expected] of cases) {
      assert.throws(
        () => parseAllowedSigners(`bob@example.com ${publicLine(bob)}\n${line}\n`, '/etc/signers'),
        (err: Error) =>
          err instanceof SignersFileError && /^signers file \/etc\/signers line 2: /.test(err.message) && expected.test(err.message),
        line,
      );
    }
  });

  it('loads the signers file beside the config; a bad one is a config error naming file and line', () => {
    const configPath = join(dir, 'runbooks.config.yaml');
    writeFileSync(
      configPath,
      'environments:\n  guarded:\n    protected: true\n    aws: { region: us-east-1 }\n    approvals: { approvers: [alice@example.com, bob@example.com], signers: allowed_signers }\n',
    );
    const config = loadConfig(configPath);
    const guarded = environment(config, 'guarded');
    assert.equal(guarded.approvals.signers, signersFile, 'relative to the config file');
    assert.deepEqual(
      environmentSigners(config, guarded)?.map((s) => s.principals[0]),
      ['alice@example.com', 'bob@example.com'],
    );
    assert.equal(runPolicy(guarded).signed, true);

    writeFileSync(join(dir, 'bad_signers'), `alice@example.com ${publicLine(alice)}\nbob@example.com ssh-ed25519\n`);
    assert.throws(
      () => parseConfig('environments:\n  e:\n    aws: { region: us-east-1 }\n    approvals: { signers: bad_signers }\n', configPath),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message.includes(`environments.e.approvals.signers: signers file ${join(dir, 'bad_signers')} line 2: expected`),
    );
    assert.throws(
      () => parseConfig('environments:\n  e:\n    aws: { region: us-east-1 }\n    approvals: { signers: missing }\n', configPath),
      (err: Error) => err instanceof ConfigError && err.message.includes(`signers file ${join(dir, 'missing')}: cannot read it`),
    );
  });

  it('refuses a key file that is unreadable or not a private key, naming file and line', async () => {
    await assert.rejects(
      findSigningKey(join(dir, 'nope')),
      (err: Error) => err instanceof ConfigError && err.message.startsWith(`key file ${join(dir, 'nope')}: cannot read it`),
    );
    await assert.rejects(
      findSigningKey(`${alice}.pub`),
      (err: Error) =>
        err instanceof ConfigError && /^key file \S+alice.pub line 1: not an OpenSSH private key.*this is a public key/.test(err.message),
    );
  });

  it('signs with the first key in ssh-agent when no key file is given', async () => {
    const socket = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const saved = { sock: process.env.SSH_AUTH_SOCK, key: process.env.RUNBOOK_SIGNING_KEY };
    try {
      await waitUntil(() => existsSync(socket), { timeoutMs: 10_000, intervalMs: 50, what: () => 'ssh-agent to listen' });
      execFileSync('ssh-add', ['-q', bob], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      process.env.SSH_AUTH_SOCK = socket;
      delete process.env.RUNBOOK_SIGNING_KEY;
      const key = await findSigningKey();
      assert.equal(key?.kind, 'agent');
      const expiresAt = soon();
      const signature = await signMessage(key!, decisionMessage({ ...wait, expiresAt }));
      assert.equal(verifyDecision(signers(), { ...wait, expiresAt, signature }), 'bob@example.com');
    } finally {
      agent.kill();
      if (saved.sock === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved.sock;
      if (saved.key !== undefined) process.env.RUNBOOK_SIGNING_KEY = saved.key;
    }
  });
});

describe('the shipped example config', () => {
  it('loads, and its protected environments sign with named signers who are its approvers', () => {
    const config = loadConfig(new URL('../../../examples/runbooks.config.yaml', import.meta.url).pathname);
    for (const name of Object.keys(config.environments)) {
      const env = environment(config, name);
      if (!env.protected) continue;
      const principals = environmentSigners(config, env)?.flatMap((s) => s.principals);
      assert.ok(principals?.length, `${name} lists signers`);
      assert.deepEqual([...principals].sort(), [...env.approvals.approvers].sort(), `${name}: every approver can sign`);
    }
  });
});
