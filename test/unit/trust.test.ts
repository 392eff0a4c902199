/**
 * Trust logic without a registry server: keys sealed at rest, metadata the TUF models verify, the
 * policy, and the registry's timestamping on a ManualClock (no test waits for the wall clock).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, MetadataKind } from '@tufjs/models';
import { ManualClock } from '../../src/base/clock.js';
import { sha256 } from '../../src/base/digest.js';
import { RegistryStorage } from '../../src/registry/storage.js';
import { MT } from '../../src/spec/distribution.js';
import { TITLE_ANNOTATION, TRUST_ARTIFACT_TYPE, TRUST_FILE_TYPE, TRUST_TAG, trustFiles } from '../../src/spec/trust.js';
import { generateKey, keyIdOf, parseSealed, seal, unseal } from '../../src/trust/keys.js';
import { DEFAULT_EXPIRIES, RepositoryMetadata } from '../../src/trust/metadata.js';
import { parsePolicy, ruleFor } from '../../src/trust/policy.js';
import { repositoryOf } from '../../src/trust/gate.js';
import { Timestamper } from '../../src/trust/timestamper.js';
import { KeyStore } from '../../src/trust/keys.js';
import { Publisher } from '../../src/trust/publisher.js';
import { TrustClient, TrustRefusal } from '../../src/trust/verify.js';
import { RegistryServer } from '../../src/registry/server.js';

const clock = new ManualClock();

const roleKeyOf = (k: ReturnType<typeof generateKey>) => ({ ...k.public, keyid: k.keyid });

test('keys: ed25519 and ecdsa P-256, sealed with a passphrase; a wrong passphrase is told apart', () => {
  for (const type of ['ed25519', 'ecdsa'] as const) {
    const k = generateKey(type, 'test');
    assert.equal(k.keyid, keyIdOf(k.public));
    const sealed = JSON.parse(JSON.stringify(seal(k, 'correct horse')));
    assert.ok(
      !JSON.stringify(sealed).includes(k.key.export({ format: 'der', type: 'pkcs8' }).toString('base64')),
      'the private key is not stored in the clear',
    );
    const back = unseal(parseSealed(sealed, 'f'), 'correct horse');
    assert.equal(back.keyid, k.keyid);
    assert.throws(() => unseal(parseSealed(sealed, 'f'), 'wrong'), /wrong passphrase for key/);
  }
});

test('metadata: a new repository verifies with the TUF models; a rotation is signed by the old and the new root', () => {
  const keys = {
    root: generateKey('ed25519', 'root'),
    targets: generateKey('ecdsa', 't'),
    snapshot: generateKey('ed25519', 's'),
    timestamp: generateKey('ed25519', 'ts'),
  };
  const m = RepositoryMetadata.create(
    {
      root: roleKeyOf(keys.root),
      targets: roleKeyOf(keys.targets),
      snapshot: roleKeyOf(keys.snapshot),
      timestamp: roleKeyOf(keys.timestamp),
    },
    DEFAULT_EXPIRIES,
  );
  m.setTarget('targets.json', 'v1', { digest: `sha256:${'a'.repeat(64)}`, size: 10 });
  const sign = (f: string) =>
    f === 'root.json'
      ? [keys.root]
      : f === 'targets.json'
        ? [keys.targets]
        : f === 'snapshot.json'
          ? [keys.snapshot]
          : [];
  m.seal({ now: clock.now(), sign, timestampKey: keys.timestamp });
  const files = m.files();
  const load = (name: string, kind: MetadataKind) =>
    Metadata.fromJSON(kind as MetadataKind.Root, JSON.parse(files.get(name)!.toString()));
  const root = load('root.json', MetadataKind.Root);
  root.verifyDelegate('root', root);
  root.verifyDelegate('targets', load('targets.json', MetadataKind.Targets) as never);
  root.verifyDelegate('timestamp', load('timestamp.json', MetadataKind.Timestamp) as never);
  assert.deepEqual([...files.keys()].sort(), [
    '1.root.json',
    'root.json',
    'snapshot.json',
    'targets.json',
    'timestamp.json',
  ]);
  // rotation: root v2 names the new key and is signed by both
  const reloaded = RepositoryMetadata.fromFiles(files);
  const next = generateKey('ed25519', 'root2');
  reloaded.rotate('root', next.keyid, next.public);
  reloaded.addRootSigners([keys.root]);
  reloaded.seal({
    now: clock.now(),
    sign: (f) => (f === 'root.json' ? [next] : sign(f)),
    timestampKey: keys.timestamp,
  });
  const v2 = Metadata.fromJSON(MetadataKind.Root, JSON.parse(reloaded.files().get('2.root.json')!.toString()));
  root.verifyDelegate('root', v2); // the old root accepts it (5.3.4)
  v2.verifyDelegate('root', v2); // and it is signed by its own
  assert.equal(reloaded.targetsOf('targets.json')['v1']!.size, 10);
  // an unchanged snapshot keeps its bytes: the timestamp's hash of it still holds
  assert.equal(
    RepositoryMetadata.fromFiles(files).fileBytes('snapshot.json').toString(),
    files.get('snapshot.json')!.toString(),
  );
});

test('signers: a delegation with a threshold; removing a signer revokes its key; a threshold above the keys is refused', () => {
  const m = RepositoryMetadata.create(
    Object.fromEntries(
      ['root', 'targets', 'snapshot', 'timestamp'].map((r) => [r, roleKeyOf(generateKey('ed25519', r))]),
    ) as never,
    DEFAULT_EXPIRIES,
  );
  const a = generateKey('ed25519', 'a');
  const b = generateKey('ed25519', 'b');
  m.addSigner('alice', a.keyid, a.public);
  assert.throws(() => m.addSigner('bob', b.keyid, b.public, 3), /threshold 3 is more than the 2 signer key/);
  m.addSigner('bob', b.keyid, b.public, 2);
  assert.deepEqual(m.delegation(), {
    keyids: [a.keyid, b.keyid],
    threshold: 2,
    signers: { alice: a.keyid, bob: b.keyid },
  });
  assert.equal(m.removeSigner('alice'), a.keyid);
  assert.deepEqual(m.delegation()!.keyids, [b.keyid]);
  assert.equal(m.delegation()!.threshold, 1);
  assert.throws(() => m.removeSigner('mallory'), /not a signer/);
});

test('policy: the most specific scope wins; bad rules are refused', () => {
  const p = parsePolicy(
    JSON.stringify({
      default: 'none',
      repositories: {
        'reg:5000': 'signed',
        'reg:5000/acme/open': { require: 'none' },
        'reg:5000/acme/web': { rootKeys: ['abcdef12'] },
      },
    }),
    'p',
  );
  assert.equal(ruleFor(p, 'reg:5000/x/y').require, 'signed');
  assert.equal(ruleFor(p, 'reg:5000/acme/open').require, 'none');
  assert.deepEqual(ruleFor(p, 'reg:5000/acme/web'), { require: 'signed', rootKeys: ['abcdef12'] });
  assert.equal(ruleFor(p, 'reg:50000/x').require, 'none', 'a scope matches whole path segments');
  assert.equal(ruleFor(p, 'busybox').require, 'none');
  assert.throws(
    () => parsePolicy('{"repositories": {"a": {"rootKeys": ["not hex"]}}}', 'p'),
    /rootKeys: a list of key ids/,
  );
  assert.throws(() => parsePolicy('[', 'p'), /not JSON/);
});

test('gate: the repository a reference names, as Docker normalizes it', () => {
  assert.equal(repositoryOf('busybox'), 'busybox');
  assert.equal(repositoryOf('docker.io/library/busybox:1.36'), 'busybox');
  assert.equal(repositoryOf('index.docker.io/acme/web'), 'acme/web');
  assert.equal(repositoryOf(`reg:5000/acme/web@sha256:${'a'.repeat(64)}`), 'reg:5000/acme/web');
  assert.equal(repositoryOf('reg:5000/acme/web:v2'), 'reg:5000/acme/web');
});

test('registry timestamping on a ManualClock: re-signed on the timer once past half its life, not before', async () => {
  const clock = new ManualClock();
  const root = mkdtempSync(join(tmpdir(), 'berth-unit-ts-'));
  try {
    const storage = new RegistryStorage(root, clock);
    await storage.init();
    const registryKey = generateKey('ed25519', 'registry timestamp');
    const hour = 3_600_000;
    const ts = new Timestamper(registryKey, hour, clock);
    const k = {
      root: generateKey('ed25519', 'r'),
      targets: generateKey('ed25519', 't'),
      snapshot: generateKey('ed25519', 's'),
    };
    const m = RepositoryMetadata.create(
      {
        ...Object.fromEntries(Object.entries(k).map(([r, x]) => [r, roleKeyOf(x)])),
        timestamp: roleKeyOf(registryKey),
      } as never,
      DEFAULT_EXPIRIES,
    );
    const sign = (f: string) =>
      f === 'root.json' ? [k.root] : f === 'targets.json' ? [k.targets] : f === 'snapshot.json' ? [k.snapshot] : [];
    m.seal({ now: clock.now(), sign, timestampKey: null });
    // the `_trust` artifact as a publisher pushes it (bundle.ts), written straight into storage
    const layers = [];
    for (const [name, bytes] of [...m.files()].sort(([a], [b]) => a.localeCompare(b))) {
      const digest = await storage.putBlobBytes(bytes);
      await storage.linkBlob('acme/web', digest);
      layers.push({
        mediaType: TRUST_FILE_TYPE,
        digest,
        size: bytes.length,
        annotations: { [TITLE_ANNOTATION]: name },
      });
    }
    const empty = Buffer.from('{}');
    await storage.linkBlob('acme/web', await storage.putBlobBytes(empty));
    const config = { mediaType: MT.ociEmpty, digest: sha256(empty), size: empty.length };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        artifactType: TRUST_ARTIFACT_TYPE,
        config,
        layers,
      }),
    );
    const md = await storage.putBlobBytes(manifest);
    await storage.putManifest('acme/web', md, MT.ociManifest);
    await storage.setTag('acme/web', TRUST_TAG, md);
    const timestamp = async () => {
      const files = trustFiles(
        JSON.parse(readFileSync(storage.blobPath((await storage.tag('acme/web', TRUST_TAG))!), 'utf8')),
      );
      const f = files?.get('timestamp.json');
      return f
        ? (
            JSON.parse(readFileSync(storage.blobPath(f.digest), 'utf8')) as {
              signed: { version: number; expires: string };
            }
          ).signed
        : null;
    };
    // the push's refresh: the first timestamp, by the registry's key, for an hour
    await ts.refresh('acme/web', storage);
    const first = (await timestamp())!;
    assert.equal(first.version, 1);
    assert.equal(Date.parse(first.expires), clock.now() + hour);
    let round: Promise<void> = Promise.resolve();
    ts.start(storage, (done) => (round = done));
    try {
      clock.advance(hour / 4); // a quarter of its life gone: the timer looks, and leaves it
      await round;
      assert.equal((await timestamp())!.version, 1);
      clock.advance(hour / 4 + 1); // past half its life: re-signed, for another hour from now
      await round;
      const next = (await timestamp())!;
      assert.equal(next.version, 2);
      assert.equal(Date.parse(next.expires), Math.floor((clock.now() + hour) / 1000) * 1000);
    } finally {
      ts.stop();
    }
    assert.equal(clock.pending, 0, 'stopped: no timer left');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('publisher with injected I/O: signs on a registry on loopback; metadata dated two days ago is refused as expired (by reason, not text) and re-signing renews it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-unit-pub-'));
  const reg = new RegistryServer({ root: join(dir, 'registry'), addr: '127.0.0.1:0' });
  const { port } = await reg.listen();
  try {
    const name = `127.0.0.1:${port}/acme/web`;
    const keys = new KeyStore(join(dir, 'keys'), join(dir, 'root-keys'), { get: async () => 'unit-test-passphrase' });
    const verifier = new TrustClient(join(dir, 'tuf'));
    const notes: string[] = [];
    const publisher = (clock: ManualClock) =>
      new Publisher({ keys, verifier, credentials: () => null, clock, note: (t) => notes.push(t) });
    const target = { digest: `sha256:${'b'.repeat(64)}`, size: 527, mediaType: MT.ociManifest };
    // signed "two days ago": a one-day timestamp that has expired since
    const then = new ManualClock(Date.now() - 2 * 86_400_000);
    const signed = await publisher(then).sign(name, 'v1', async () => target);
    assert.equal(signed.role, 'targets');
    assert.ok(notes.some((n) => n.startsWith(`Initialized trust data for ${name}`)));
    const refused = await new TrustClient(join(dir, 'tuf-consumer')).open(name, null).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof TrustRefusal, String(refused));
    assert.equal(refused.reason, 'expired');
    assert.equal(refused.role, 'timestamp');
    // the publisher signs again now: the expired timestamp is renewed, not a reason to stop
    await publisher(new ManualClock(Date.now())).sign(name, 'v1', async () => target);
    assert.ok(notes.some((n) => n.includes('the trust data has expired; signing renews it')));
    const repo = await new TrustClient(join(dir, 'tuf-consumer')).open(name, null);
    assert.equal((await repo.resolve('v1')).digest, target.digest);
    const unsigned = await repo.resolve('v2').then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(unsigned instanceof TrustRefusal && unsigned.reason === 'unsigned');
  } finally {
    await reg.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
