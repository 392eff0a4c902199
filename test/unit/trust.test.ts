/** Trust logic without a registry: keys sealed at rest, metadata the TUF models verify, the policy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata, MetadataKind } from '@tufjs/models';
import { generateKey, keyIdOf, parseSealed, seal, unseal } from '../../src/trust/keys.js';
import { DEFAULT_EXPIRIES, RepositoryMetadata } from '../../src/trust/metadata.js';
import { parsePolicy, ruleFor } from '../../src/trust/policy.js';

const roleKeyOf = (k: ReturnType<typeof generateKey>) => ({ ...k.public, keyid: k.keyid });

test('keys: ed25519 and ecdsa P-256, sealed with a passphrase; a wrong passphrase is told apart', () => {
  for (const type of ['ed25519', 'ecdsa'] as const) {
    const k = generateKey(type, 'test');
    assert.equal(k.keyid, keyIdOf(k.public));
    const sealed = JSON.parse(JSON.stringify(seal(k, 'correct horse')));
    assert.ok(!JSON.stringify(sealed).includes(k.key.export({ format: 'der', type: 'pkcs8' }).toString('base64')), 'the private key is not stored in the clear');
    const back = unseal(parseSealed(sealed, 'f'), 'correct horse');
    assert.equal(back.keyid, k.keyid);
    assert.throws(() => unseal(parseSealed(sealed, 'f'), 'wrong'), /wrong passphrase for key/);
  }
});

test('metadata: a new repository verifies with the TUF models; a rotation is signed by the old and the new root', () => {
  const keys = { root: generateKey('ed25519', 'root'), targets: generateKey('ecdsa', 't'), snapshot: generateKey('ed25519', 's'), timestamp: generateKey('ed25519', 'ts') };
  const m = RepositoryMetadata.create({ root: roleKeyOf(keys.root), targets: roleKeyOf(keys.targets), snapshot: roleKeyOf(keys.snapshot), timestamp: roleKeyOf(keys.timestamp) }, DEFAULT_EXPIRIES);
  m.setTarget('targets.json', 'v1', { digest: `sha256:${'a'.repeat(64)}`, size: 10 });
  const sign = (f: string) => (f === 'root.json' ? [keys.root] : f === 'targets.json' ? [keys.targets] : f === 'snapshot.json' ? [keys.snapshot] : []);
  m.seal({ now: Date.now(), sign, timestampKey: keys.timestamp });
  const files = m.files();
  const load = (name: string, kind: MetadataKind) => Metadata.fromJSON(kind as MetadataKind.Root, JSON.parse(files.get(name)!.toString()));
  const root = load('root.json', MetadataKind.Root);
  root.verifyDelegate('root', root);
  root.verifyDelegate('targets', load('targets.json', MetadataKind.Targets) as never);
  root.verifyDelegate('timestamp', load('timestamp.json', MetadataKind.Timestamp) as never);
  assert.deepEqual([...files.keys()].sort(), ['1.root.json', 'root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
  // rotation: root v2 names the new key and is signed by both
  const reloaded = RepositoryMetadata.fromFiles(files);
  const next = generateKey('ed25519', 'root2');
  reloaded.rotate('root', next.keyid, next.public);
  reloaded.addRootSigners([keys.root]);
  reloaded.seal({ now: Date.now(), sign: (f) => (f === 'root.json' ? [next] : sign(f)), timestampKey: keys.timestamp });
  const v2 = Metadata.fromJSON(MetadataKind.Root, JSON.parse(reloaded.files().get('2.root.json')!.toString()));
  root.verifyDelegate('root', v2); // the old root accepts it (5.3.4)
  v2.verifyDelegate('root', v2); // and it is signed by its own
  assert.equal(reloaded.targetsOf('targets.json')['v1']!.size, 10);
  // an unchanged snapshot keeps its bytes: the timestamp's hash of it still holds
  assert.equal(RepositoryMetadata.fromFiles(files).fileBytes('snapshot.json').toString(), files.get('snapshot.json')!.toString());
});

test('signers: a delegation with a threshold; removing a signer revokes its key; a threshold above the keys is refused', () => {
  const m = RepositoryMetadata.create(
    Object.fromEntries(['root', 'targets', 'snapshot', 'timestamp'].map((r) => [r, roleKeyOf(generateKey('ed25519', r))])) as never,
    DEFAULT_EXPIRIES,
  );
  const a = generateKey('ed25519', 'a');
  const b = generateKey('ed25519', 'b');
  m.addSigner('alice', a.keyid, a.public);
  assert.throws(() => m.addSigner('bob', b.keyid, b.public, 3), /threshold 3 is more than the 2 signer key/);
  m.addSigner('bob', b.keyid, b.public, 2);
  assert.deepEqual(m.delegation(), { keyids: [a.keyid, b.keyid], threshold: 2, signers: { alice: a.keyid, bob: b.keyid } });
  assert.equal(m.removeSigner('alice'), a.keyid);
  assert.deepEqual(m.delegation()!.keyids, [b.keyid]);
  assert.equal(m.delegation()!.threshold, 1);
  assert.throws(() => m.removeSigner('mallory'), /not a signer/);
});

test('policy: the most specific scope wins; bad rules are refused', () => {
  const p = parsePolicy(JSON.stringify({ default: 'none', repositories: { 'reg:5000': 'signed', 'reg:5000/acme/open': { require: 'none' }, 'reg:5000/acme/web': { rootKeys: ['abcdef12'] } } }), 'p');
  assert.equal(ruleFor(p, 'reg:5000/x/y').require, 'signed');
  assert.equal(ruleFor(p, 'reg:5000/acme/open').require, 'none');
  assert.deepEqual(ruleFor(p, 'reg:5000/acme/web'), { require: 'signed', rootKeys: ['abcdef12'] });
  assert.equal(ruleFor(p, 'reg:50000/x').require, 'none', 'a scope matches whole path segments');
  assert.equal(ruleFor(p, 'busybox').require, 'none');
  assert.throws(() => parsePolicy('{"repositories": {"a": {"rootKeys": ["not hex"]}}}', 'p'), /rootKeys: a list of key ids/);
  assert.throws(() => parsePolicy('[', 'p'), /not JSON/);
});
