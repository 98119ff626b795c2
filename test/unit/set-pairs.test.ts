/** `--set` pairs: dotted keys into objects and lists, JSON values, and keys that could reach Object.prototype refused. */
import assert from 'node:assert/strict';
import { applySetPairs } from '../../src/catalog/set-pairs.js';
import { InputError } from '../../src/catalog/errors.js';

const applied = (pairs: string[], start: Record<string, unknown> = {}) => {
  const target = structuredClone(start);
  applySetPairs(target, pairs);
  return target;
};

function assertUsage(pairs: string[], message: RegExp, start: Record<string, unknown> = {}): void {
  const target = structuredClone(start);
  assert.throws(
    () => applySetPairs(target, pairs),
    (err: Error) => {
      assert.ok(err instanceof InputError, `${err.name}: ${err.message}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('--set pairs', () => {
  it('reads values as JSON when they are, as text otherwise', () => {
    assert.deepEqual(applied(['n=2', 'on=true', 'name=app', 'list=["a"]', 'obj={"a":1}', 'empty=']), {
      n: 2,
      on: true,
      name: 'app',
      list: ['a'],
      obj: { a: 1 },
      empty: '',
    });
  });

  it('reaches into existing objects with dotted keys, keeping their other fields; a later pair wins', () => {
    assert.deepEqual(applied(['a.b=1', 'a.c.d=x', 'a.b=2'], { a: { keep: true } }), { a: { keep: true, b: 2, c: { d: 'x' } } });
  });

  it('builds a list when a numeric key finds nothing there yet', () => {
    assert.deepEqual(applied(['regions.0.id=de']), { regions: [{ id: 'de' }] });
    assert.deepEqual(applied(['regions.0.id=de', 'regions.0.uri=s3://b/de', 'regions.1.id=fr']), {
      regions: [{ id: 'de', uri: 's3://b/de' }, { id: 'fr' }],
    });
    assert.deepEqual(applied(['tags.0=a', 'tags.1=b']), { tags: ['a', 'b'] });
  });

  it('changes an item of a list the defaults already hold', () => {
    assert.deepEqual(applied(['regions.0.id=de'], { regions: [{ id: 'mi', uri: 'u' }] }), { regions: [{ id: 'de', uri: 'u' }] });
  });

  it('keeps a numeric key of an existing object a field, not an index', () => {
    assert.deepEqual(applied(['timeouts.0=5'], { timeouts: { x: 1 } }), { timeouts: { x: 1, '0': 5 } });
  });

  it('refuses __proto__, constructor and prototype anywhere in a key, naming the pair, and pollutes nothing', () => {
    assertUsage(['__proto__.polluted=1'], /^--set __proto__\.polluted=1: '__proto__' is not allowed as a key/);
    assertUsage(['a.constructor.prototype.polluted=1'], /^--set a\.constructor\.prototype\.polluted=1: 'constructor' is not allowed/);
    assertUsage(['a.prototype=1'], /'prototype' is not allowed/);
    assertUsage(['a={"__proto__":{"polluted":1}}'], /^--set a=\{"__proto__":\{"polluted":1\}\}: '__proto__' is not allowed/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');
  });

  it('refuses a pair without =, an empty key segment, a field name on a list and a gap in a list', () => {
    assertUsage(['items'], /^--set items: expected key=value/);
    assertUsage(['=1'], /expected key=value/);
    assertUsage(['a..b=1'], /^--set a\.\.b=1: the key has an empty segment/);
    assertUsage(
      ['regions.id=de'],
      /^--set regions\.id=de: regions is a list, so the key after it must be an index \(regions\.0\), not 'id'/,
      { regions: [] },
    );
    assertUsage(['regions.2.id=de'], /^--set regions\.2\.id=de: regions has 0 item\(s\), so the next index is 0, not 2/);
  });

  it('changes nothing it was not asked to: the target object alone', () => {
    const defaults = { regions: [{ id: 'mi' }] };
    const target = structuredClone(defaults);
    applySetPairs(target, ['regions.1.id=de']);
    assert.deepEqual(defaults, { regions: [{ id: 'mi' }] });
    assert.deepEqual(target.regions, [{ id: 'mi' }, { id: 'de' }]);
  });
});
