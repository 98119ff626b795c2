/** db-migration online mode's pure rules: the subscription's connection string. */
import assert from 'node:assert/strict';
import { conninfo } from '../../src/activities/logical-replication.js';

describe('db-migration online rules', () => {
  it('quotes every value of the subscription connection, so a password cannot add a keyword', () => {
    const base = { host: 'db.example.com', port: 5432, database: 'appdb', user: 'replicator', tls: { mode: 'verify-full' as const } };
    assert.equal(
      conninfo({ ...base, password: 'plain' }),
      "host='db.example.com' port='5432' dbname='appdb' user='replicator' password='plain' sslmode=require",
    );
    // A quote would end the value and start `sslmode=disable` as a keyword of its own; escaped, it stays in the password.
    assert.match(conninfo({ ...base, password: "x' sslmode='disable" }), /password='x\\' sslmode=\\'disable' sslmode=require$/);
    assert.match(conninfo({ ...base, password: 'back\\slash' }), /password='back\\\\slash'/);
    assert.match(conninfo({ ...base, tls: { mode: 'disable' }, password: 'p' }), /sslmode=disable$/);
  });
});
