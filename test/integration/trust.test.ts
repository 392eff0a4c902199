/**
 * Issue #7, Trust: signing with offline root keys, TUF metadata that travels with the image,
 * verification by the reference TUF client (tuf-js), content trust in the CLI, a daemon-side
 * policy, and the attacks TUF exists for — each refused with its own message.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { startBerthRegistry, startDistribution, type Registry } from './registry-harness.js';
import { endpointOf, RegistrySession } from '../../src/distribution/client.js';
import { fetchFile, fetchIndex, pushBundle } from '../../src/trust/bundle.js';
import { cachedTarget } from '../../src/trust/cache.js';
import { KeyStore, keyIdOf, publicJsonOf, type PrivateKey } from '../../src/trust/keys.js';
import { RepositoryMetadata, roleKeys, signTimestamp } from '../../src/trust/metadata.js';

/** Two days ago: metadata signed "then" with a one-day life has already expired (no test waits for a clock). */
const twoDaysAgo = () => Date.now() - 2 * 86_400_000;

/** A new timestamp over the registry's current trust data, signed at `now` (an already-past expiry when `now` is old). */
async function pastTimestamp(name: string, key: PrivateKey, now: number, ttl = 86_400_000): Promise<void> {
  const m = RepositoryMetadata.fromFiles(await bundleOf(name));
  m.timestamp(now, key, ttl);
  await pushBundle(new RegistrySession(endpointOf(name), null, ''), m.files());
}

/** The registry's current trust bundle of a repository, as files. */
async function bundleOf(name: string): Promise<Map<string, Buffer>> {
  const s = new RegistrySession(endpointOf(name), null, '');
  const idx = (await fetchIndex(s))!;
  const files = new Map<string, Buffer>();
  for (const f of idx.files.keys()) files.set(f, (await fetchFile(s, idx, f, 1 << 22))!);
  return files;
}

/** What an attacker holding some keys can publish: the bundle edited and signed with those keys, pushed straight to the registry. */
async function forge(
  name: string,
  edit: (m: RepositoryMetadata) => void,
  keys: {
    root?: PrivateKey[];
    targets?: PrivateKey[];
    releases?: PrivateKey[];
    snapshot: PrivateKey;
    timestamp: PrivateKey;
  },
): Promise<void> {
  const m = RepositoryMetadata.fromFiles(await bundleOf(name));
  edit(m);
  m.seal({
    now: Date.now(),
    sign: (f) =>
      (f === 'root.json'
        ? keys.root
        : f === 'targets.json'
          ? keys.targets
          : f === 'releases.json'
            ? keys.releases
            : f === 'snapshot.json'
              ? [keys.snapshot]
              : undefined) ?? [],
    timestampKey: keys.timestamp,
  });
  await pushBundle(new RegistrySession(endpointOf(name), null, ''), m.files());
}

/** Points a repository's `_trust` tag back at an earlier artifact (a replay). */
async function replay(name: string, manifest: Buffer): Promise<void> {
  const ep = endpointOf(name);
  const r = await fetch(`${ep.base}/v2/${ep.repo}/manifests/_trust`, {
    method: 'PUT',
    body: manifest as unknown as BodyInit,
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  assert.equal(r.status, 201);
}

async function trustManifest(name: string): Promise<Buffer> {
  const ep = endpointOf(name);
  return Buffer.from(
    await (
      await fetch(`${ep.base}/v2/${ep.repo}/manifests/_trust`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).arrayBuffer(),
  );
}

describe('trust', () => {
  let d: Daemon;
  let reg: Registry;
  /** a party: its own trust dir (keys, pinned roots) and passphrases */
  const party = (name: string, pass = `${name}-repo-pass`) => {
    const dir = join(d.dir, `trust-${name}`);
    const env = {
      BERTH_TRUST_DIR: dir,
      BERTH_TRUST_ROOT_DIR: join(dir, 'offline-root'),
      BERTH_TRUST_PASSPHRASE: pass,
      BERTH_TRUST_ROOT_PASSPHRASE: `${name}-root-pass`,
    };
    const berth = (
      args: string[],
      opts: { allowFail?: boolean; trust?: boolean; extra?: Record<string, string> } = {},
    ) =>
      d.berth(args, {
        allowFail: opts.allowFail ?? false,
        env: { ...env, ...(opts.trust ? { BERTH_CONTENT_TRUST: '1' } : {}), ...(opts.extra ?? {}) },
      });
    const keys = new KeyStore(dir, join(dir, 'offline-root'), {
      get: async (kind) => (kind === 'root' ? env.BERTH_TRUST_ROOT_PASSPHRASE : pass),
    });
    return { dir, env, berth, keys };
  };
  const pub = () => party('pub');
  const consumer = () => party('consumer');
  /** what a refused pull must not leave: the image list and the content store, unchanged */
  const snapshotState = async () => ({
    images: (
      await d.docker(['images', '-a', '--digests', '--format', '{{.Repository}}:{{.Tag}}@{{.Digest}} {{.ID}}'])
    ).stdout
      .split('\n')
      .sort()
      .join('\n'),
    blobs: readdirSync(join(d.root, 'content', 'blobs', 'sha256'))
      .sort()
      .join(','),
  });
  /** builds an image whose /index.html says `text`, tagged `ref` */
  const webImage = async (ref: string, text: string) => {
    const ctx = join(d.dir, `ctx-${text.replace(/\W/g, '')}`);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(
      join(ctx, 'Dockerfile'),
      `FROM busybox\nRUN echo '${text}' > /index.html\nCMD ["cat", "/index.html"]\n`,
    );
    await d.berth(['build', '-q', '-t', ref, ctx]);
  };
  const runOut = async (args: string[], p: ReturnType<typeof party>, trust = true) =>
    (await p.berth(['run', '--rm', ...args], { trust })).stdout.trim();

  before(async () => {
    d = await startDaemon();
    reg = await startBerthRegistry();
  });
  after(async () => {
    await d?.stop();
    await reg?.stop();
  });

  test('sign, then verify with tuf-js (the TUF reference client) against the registry: same digest', async () => {
    const pub = party('pub');
    const ref = `${reg.addr}/acme/web`;
    await webImage(`${ref}:v1`, 'web v1');
    const signed = await pub.berth(['trust', 'sign', `${ref}:v1`]);
    const digest = /Signed \S+ (sha256:[a-f0-9]{64})/.exec(signed.stdout)![1]!;
    assert.match(signed.stderr, /Generated root key/);
    // the root key is in its own directory, the daily keys elsewhere
    assert.equal(readdirSync(join(pub.dir, 'offline-root')).length, 1);
    assert.equal(readdirSync(join(pub.dir, 'private')).length, 3);
    // tuf-js, pointed at the TUF view the registry serves, with root v1 as its trusted root
    const meta = join(d.dir, 'tufjs-meta');
    mkdirSync(meta);
    const base = `http://${reg.addr}/trust/v1/acme/web`;
    writeFileSync(
      join(meta, 'root.json'),
      Buffer.from(await (await fetch(`${base}/metadata/1.root.json`)).arrayBuffer()),
    );
    const targets = join(d.dir, 'tufjs-targets');
    mkdirSync(targets);
    const u = new Updater({
      metadataDir: meta,
      metadataBaseUrl: `${base}/metadata`,
      targetDir: targets,
      targetBaseUrl: `http://${reg.addr}/v2/acme/web/manifests`,
    });
    await u.refresh();
    const info = await u.getTargetInfo('v1');
    assert.ok(info, 'tuf-js finds the tag');
    assert.equal(`sha256:${info.hashes['sha256']}`, digest);
    // and the target it downloads (the manifest, from the plain OCI API) verifies against it
    const file = await u.downloadTarget(info, join(targets, 'v1'));
    assert.ok(readFileSync(file).length === info.length);
  });

  test("the seed's demo: signed v1 runs; an attacker's unsigned push is refused (v1 keeps running); the publisher signs v2 and it runs", async () => {
    const p = pub();
    const c = consumer();
    const ref = `${reg.addr}/acme/web`;
    // v1 is signed (trust sign pushes it); the consumer, trust on, runs it
    await d.docker(['tag', `${ref}:v1`, `${ref}:latest`]);
    await p.berth(['trust', 'sign', `${ref}:latest`]);
    await d.docker(['rmi', `${ref}:latest`, `${ref}:v1`]);
    assert.equal(await runOut([`${ref}:latest`], c), 'web v1');
    const server = (await c.berth(['run', '-d', `${ref}:latest`, 'sleep', '300'], { trust: true })).stdout
      .trim()
      .split('\n')
      .pop()!;
    // the attacker, without the keys, pushes v2 over the tag and a new tag, straight to the registry
    await webImage(`${ref}:latest`, 'defaced');
    await d.docker(['push', `${ref}:latest`]);
    await d.docker(['tag', `${ref}:latest`, `${ref}:evil`]);
    await d.docker(['push', `${ref}:evil`]);
    await d.docker(['rmi', `${ref}:latest`, `${ref}:evil`]);
    const before = await snapshotState();
    const evil = await c.berth(['pull', `${ref}:evil`], { trust: true, allowFail: true });
    assert.notEqual(evil.code, 0);
    assert.match(evil.stderr, /tag evil is not signed/);
    const runEvil = await c.berth(['run', '--rm', `${ref}:evil`], { trust: true, allowFail: true });
    assert.notEqual(runEvil.code, 0);
    assert.match(runEvil.stderr, /tag evil is not signed/);
    assert.deepEqual(await snapshotState(), before, 'a refused pull leaves nothing');
    // the overwritten tag resolves through the signed metadata: still v1, whatever the registry's tag says
    // (DOCKER_CONTENT_TRUST=1 is honoured as BERTH_CONTENT_TRUST=1 is)
    await c.berth(['pull', `${ref}:latest`], { extra: { DOCKER_CONTENT_TRUST: '1' } });
    assert.equal(await runOut([`${ref}:latest`], c), 'web v1');
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.State.Running}}', server])).stdout.trim(),
      'true',
      'v1 keeps running',
    );
    // the publisher signs v2 — with the root key offline (its directory gone): daily signing never needs it
    await webImage(`${ref}:latest`, 'web v2');
    renameSync(join(p.dir, 'offline-root'), join(d.dir, 'usb-stick'));
    await p.berth(['trust', 'sign', `${ref}:latest`]);
    renameSync(join(d.dir, 'usb-stick'), join(p.dir, 'offline-root'));
    await d.docker(['rmi', `${ref}:latest`]);
    assert.equal(await runOut([`${ref}:latest`], c), 'web v2');
    // trust off: the registry's tag is taken as it is (no cost, no check)
    const off = await c.berth(['pull', `${ref}:evil`]);
    assert.equal(off.code, 0);
    assert.equal(await runOut([`${ref}:evil`], c, false), 'defaced');
    await d.docker(['rm', '-f', server]);
  });

  test('the verified-metadata cache answers while the artifact is unchanged; a tampered, foreign-writable, expired or superseded cache is not used', async () => {
    const p = pub();
    const c = party('cache');
    const name = `${reg.addr}/acme/cached`;
    await webImage(`${name}:v1`, 'cached v1');
    await p.berth(['trust', 'sign', `${name}:v1`]);
    // an unsigned image in the same repository: what a tampered cache would send the consumer to
    await webImage(`${name}:evil`, 'cached evil');
    await d.docker(['push', `${name}:evil`]);
    const evil = (await d.docker(['inspect', '-f', '{{index .RepoDigests 0}}', `${name}:evil`])).stdout
      .trim()
      .split('@')[1]!;
    await d.docker(['rmi', `${name}:v1`, `${name}:evil`]);
    // the first pull verifies in full (tuf-js) and records the artifact it verified
    const first = await c.berth(['pull', `${name}:v1`], { trust: true });
    const signed = /@(sha256:[0-9a-f]{64})/.exec(first.stdout)![1]!;
    assert.notEqual(signed, evil);
    const dir = join(c.dir, 'tuf', reg.addr.replace(/:/g, '_'), 'acme', 'cached');
    assert.ok(existsSync(join(dir, 'verified.json')));
    const served = `sha256:${createHash('sha256')
      .update(await trustManifest(name))
      .digest('hex')}`;
    const now = Date.now();
    assert.equal(cachedTarget(dir, served, 'v1', now)?.digest, signed, 'the cache gives the signed digest');
    assert.equal(cachedTarget(dir, served, 'evil', now), null, 'an unsigned tag is not answered from the cache');
    // the second pull is answered from the cache (the full verification would record its artifact again)
    const recorded = statSync(join(dir, 'verified.json')).mtimeMs;
    const second = await c.berth(['pull', `${name}:v1`], { trust: true });
    assert.equal(second.stdout, `Tagging ${name}@${signed} as ${name}:v1\n`);
    assert.equal(statSync(join(dir, 'verified.json')).mtimeMs, recorded, 'answered from the cache');
    // expired: the same files judged after the timestamp's expiry (no test waits for a clock)
    const expires = (f: string) =>
      Date.parse((JSON.parse(readFileSync(join(dir, f), 'utf8')) as { signed: { expires: string } }).signed.expires);
    assert.equal(cachedTarget(dir, served, 'v1', expires('timestamp.json') + 1000), null, 'expired timestamp');
    assert.equal(cachedTarget(dir, served, 'v1', expires('timestamp.json') - 1000)?.digest, signed);
    assert.equal(cachedTarget(dir, served, 'v1', expires('targets.json') + 1000), null, 'expired targets');
    // superseded: the registry serves another artifact (a new signature, a revocation)
    assert.equal(cachedTarget(dir, `sha256:${'0'.repeat(64)}`, 'v1', now), null, 'superseded');
    // state someone else could have written vouches for nothing
    chmodSync(join(dir, 'targets.json'), 0o666);
    assert.equal(cachedTarget(dir, served, 'v1', now), null, 'a world-writable document');
    chmodSync(join(dir, 'targets.json'), 0o644);
    chmodSync(dir, 0o777);
    assert.equal(cachedTarget(dir, served, 'v1', now), null, 'a world-writable directory');
    chmodSync(dir, 0o700);
    assert.equal(cachedTarget(dir, served, 'v1', now)?.digest, signed);
    // tampered: the cached targets now name the unsigned image for v1
    const targets = JSON.parse(readFileSync(join(dir, 'targets.json'), 'utf8')) as {
      signed: { targets: Record<string, { hashes: { sha256: string } }> };
    };
    targets.signed.targets['v1']!.hashes.sha256 = evil.slice('sha256:'.length);
    writeFileSync(join(dir, 'targets.json'), JSON.stringify(targets));
    assert.equal(cachedTarget(dir, served, 'v1', now), null, 'a tampered document');
    // also when the record is made to match it: the signatures do not
    const rec = JSON.parse(readFileSync(join(dir, 'verified.json'), 'utf8')) as { manifest: string };
    const m = JSON.parse(rec.manifest) as {
      layers: Array<{ digest: string; size: number; annotations: Record<string, string> }>;
    };
    const tampered = readFileSync(join(dir, 'targets.json'));
    for (const l of m.layers)
      if (l.annotations['org.opencontainers.image.title'] === 'targets.json') {
        l.digest = `sha256:${createHash('sha256').update(tampered).digest('hex')}`;
        l.size = tampered.length;
      }
    const forged = JSON.stringify(m);
    writeFileSync(join(dir, 'verified.json'), JSON.stringify({ manifest: forged }));
    const forgedDigest = `sha256:${createHash('sha256').update(forged).digest('hex')}`;
    assert.equal(cachedTarget(dir, forgedDigest, 'v1', now), null, 'a tampered document under a matching record');
    writeFileSync(join(dir, 'verified.json'), JSON.stringify(rec));
    // through the CLI: the tampered cache is not used; the full verification answers with the signed digest
    const third = await c.berth(['pull', `${name}:v1`], { trust: true });
    assert.match(third.stdout, new RegExp(`@${signed}`));
    assert.doesNotMatch(third.stdout, new RegExp(evil));
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.Id}}', `${name}:v1`])).stdout.trim(),
      (await d.docker(['inspect', '-f', '{{.Id}}', `${name}@${signed}`])).stdout.trim(),
    );
    // and the full verification stored the registry's document again: the cache answers once more
    assert.equal(cachedTarget(dir, served, 'v1', Date.now())?.digest, signed);
  });

  test('attacks, each refused with its own message, leaving nothing behind: swapped layer, swapped manifest, rollback, frozen metadata', async () => {
    const p = pub();
    const c = party('victim');
    const ref = `${reg.addr}/acme/app`;
    const blob = (digest: string) => join(reg.root, 'blobs', 'sha256', digest.slice(7));
    const manifestOf = async (digest: string) =>
      JSON.parse(await (await fetch(`http://${reg.addr}/v2/acme/app/manifests/${digest}`)).text()) as {
        layers: Array<{ digest: string }>;
      };
    const signedDigest = async (tag: string) =>
      /Signed \S+ (sha256:[a-f0-9]{64})/.exec((await p.berth(['trust', 'sign', `${ref}:${tag}`])).stdout)![1]!;
    for (const v of ['v1', 'v2', 'v3']) await webImage(`${ref}:${v}`, `app ${v}`);
    await signedDigest('v1');
    const oldTrust = await trustManifest(ref);
    await c.berth(['pull', `${ref}:v1`], { trust: true });
    const v2 = await signedDigest('v2');
    const v3 = await signedDigest('v3');
    for (const v of ['v1', 'v2', 'v3']) await d.docker(['rmi', `${ref}:${v}`]);
    await d.docker(['builder', 'prune', '-af']); // the build cache kept the layers: the pulls must fetch them
    const refused = async (tag: string, re: RegExp) => {
      const before = await snapshotState();
      const r = await c.berth(['pull', `${ref}:${tag}`], { trust: true, allowFail: true });
      assert.notEqual(r.code, 0, `pull ${tag} must be refused`);
      assert.match(r.stderr, re);
      assert.deepEqual(await snapshotState(), before, `a refused pull of ${tag} leaves nothing`);
    };
    // a layer swapped in the registry's storage
    const layer = (await manifestOf(v2)).layers.at(-1)!.digest;
    const saved = readFileSync(blob(layer));
    writeFileSync(blob(layer), Buffer.alloc(saved.length, 0x41));
    await refused('v2', /failed verification|does not match/);
    writeFileSync(blob(layer), saved);
    // the manifest swapped: the signed digest's bytes replaced by another image's manifest
    const savedManifest = readFileSync(blob(v3));
    writeFileSync(blob(v3), readFileSync(blob(v2)));
    await refused('v3', new RegExp(`manifest ${v3} failed verification`));
    writeFileSync(blob(v3), savedManifest);
    // rollback: the victim has seen the newest metadata; the registry replays the one from v1's signing
    await c.berth(['pull', `${ref}:v3`], { trust: true });
    const current = await trustManifest(ref);
    await replay(ref, oldTrust);
    await refused(
      'v1',
      /rollback refused: the registry serves timestamp metadata older than what this host has already verified/,
    );
    await replay(ref, current);
    // frozen: the registry serves metadata whose timestamp has expired (signed with an already-past
    // expiry by the publisher's own timestamp key: what a replay of old metadata looks like later)
    const fresh = `${reg.addr}/acme/fresh`;
    await d.docker(['tag', 'busybox', `${fresh}:1`]);
    await p.berth(['trust', 'sign', '--timestamp-expiry', '2h', `${fresh}:1`]);
    await c.berth(['pull', `${fresh}:1`], { trust: true });
    const freshRoot = RepositoryMetadata.fromFiles(await bundleOf(fresh)).root;
    await pastTimestamp(fresh, (await p.keys.get(roleKeys(freshRoot, 'timestamp').keyids[0]!))!, twoDaysAgo());
    const frozen = await c.berth(['pull', `${fresh}:1`], { trust: true, allowFail: true });
    assert.notEqual(frozen.code, 0);
    assert.match(
      frozen.stderr,
      /the registry serves expired timestamp metadata \(expired [0-9T:-]+Z\): frozen or replayed trust data/,
    );
    // the publisher signing again renews it
    await p.berth(['trust', 'sign', `${fresh}:1`]);
    await c.berth(['pull', `${fresh}:1`], { trust: true });
  });

  test('a release team with a threshold of 2; root key rotation and a revoked signer, seen by a consumer that pinned the old root', async () => {
    const p = pub();
    const c = party('pinned');
    const alice = party('alice');
    const bob = party('bob');
    const repo = `${reg.addr}/acme/team`;
    await d.docker(['tag', 'busybox', `${repo}:v1`]);
    await p.berth(['trust', 'sign', `${repo}:v1`]);
    await c.berth(['pull', `${repo}:v1`], { trust: true }); // pins root v1
    const rootV1 = JSON.parse((await c.berth(['trust', 'inspect', repo])).stdout)[0].AdministrativeKeys[0].Keys[0]
      .ID as string;
    // signers: keys generated by each, public halves handed to the owner
    for (const [who, s] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      mkdirSync(s.dir, { recursive: true });
      await s.berth(['trust', 'key', 'generate', '--dir', s.dir, who]);
    }
    await p.berth(['trust', 'signer', 'add', '--key', join(alice.dir, 'alice.pub'), 'alice', repo]);
    const added = await p.berth([
      'trust',
      'signer',
      'add',
      '--key',
      join(bob.dir, 'bob.pub'),
      '--threshold',
      '2',
      'bob',
      repo,
    ]);
    assert.match(added.stdout, /threshold 2/);
    // the team shares the snapshot and timestamp keys: exported by the owner, imported (re-sealed) by each
    const admin = JSON.parse((await p.berth(['trust', 'inspect', repo])).stdout)[0].AdministrativeKeys as Array<{
      Name: string;
      Keys: Array<{ ID: string }>;
    }>;
    for (const role of ['Snapshot', 'Timestamp']) {
      const id = admin.find((k) => k.Name === role)!.Keys[0]!.ID;
      const file = join(d.dir, `${role}.key`);
      await p.berth(['trust', 'key', 'export', '-o', file, id]);
      for (const s of [alice, bob])
        await s.berth(['trust', 'key', 'import', file], { extra: { BERTH_TRUST_IMPORT_PASSPHRASE: 'pub-repo-pass' } });
    }
    await d.docker(['tag', 'busybox', `${repo}:v2`]);
    // one signature of the two required: refused
    const one = await alice.berth(['trust', 'sign', `${repo}:v2`]);
    assert.match(one.stdout, /releases \(signed by alice; threshold 2\)/);
    const short = await c.berth(['pull', `${repo}:v2`], { trust: true, allowFail: true });
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /releases metadata is signed by 1 of the 2 keys its threshold requires/);
    // the second signer adds theirs: accepted
    assert.match((await bob.berth(['trust', 'sign', `${repo}:v2`])).stdout, /added a signature by bob/);
    await c.berth(['pull', `${repo}:v2`], { trust: true });
    // the owner rotates the root key (offline key needed, daily keys not): the consumer follows the chain
    await p.berth(['trust', 'key', 'rotate', repo, 'root']);
    await c.berth(['pull', `${repo}:v2`], { trust: true });
    const seen = JSON.parse((await c.berth(['trust', 'inspect', repo])).stdout)[0];
    assert.equal(seen.Versions.root, 2);
    assert.notEqual(seen.AdministrativeKeys[0].Keys[0].ID, rootV1);
    assert.match(seen.RootPinned, /trust on first use/);
    // alice is revoked; what she signs afterwards (she still holds the team's snapshot and timestamp keys) is refused
    await p.berth(['trust', 'signer', 'remove', 'alice', repo]);
    const aliceKey = (await alice.keys.get(alice.keys.list().find((k) => k.label === 'alice')!.keyid))!;
    const team = RepositoryMetadata.fromFiles(await bundleOf(repo));
    const snapshotKey = (await alice.keys.get(roleKeys(team.root, 'snapshot').keyids[0]!))!;
    const timestampKey = (await alice.keys.get(roleKeys(team.root, 'timestamp').keyids[0]!))!;
    const good = await trustManifest(repo);
    await forge(repo, (m) => m.setTarget('releases.json', 'v3', { digest: `sha256:${'1'.repeat(64)}`, size: 100 }), {
      releases: [aliceKey],
      snapshot: snapshotKey,
      timestamp: timestampKey,
    });
    const revoked = await c.berth(['pull', `${repo}:v3`], { trust: true, allowFail: true });
    assert.notEqual(revoked.code, 0);
    assert.match(revoked.stderr, /releases metadata is signed by revoked key/);
    await replay(repo, good);
    // whoever holds the old (rotated-out) root key cannot publish a new root
    const oldRoot = (await p.keys.get(rootV1))!;
    await forge(repo, (m) => m.rotate('timestamp', timestampKey.keyid, timestampKey.public), {
      root: [oldRoot],
      snapshot: snapshotKey,
      timestamp: timestampKey,
    });
    const oldRootRefused = await c.berth(['pull', `${repo}:v2`], { trust: true, allowFail: true });
    assert.notEqual(oldRootRefused.code, 0);
    assert.match(oldRootRefused.stderr, /root metadata is signed by revoked key/);
  });

  test('berthd --trust-policy: every API client (the docker CLI here) gets signed images only, at pull, create and start', async () => {
    const p = pub();
    const ref = `${reg.addr}/acme/web`;
    const policy = join(d.dir, 'policy.json');
    const wrongRoot = 'ab'.repeat(32);
    writeFileSync(
      policy,
      JSON.stringify({
        default: 'none',
        repositories: {
          [`${reg.addr}/acme`]: { require: 'signed' },
          [`${reg.addr}/acme/pinned`]: { require: 'signed', rootKeys: [wrongRoot] },
        },
      }),
    );
    const d2 = await startDaemon({ args: ['--trust-policy', policy] });
    try {
      // a tag the registry holds unsigned: refused; the signed tag pulls the signed digest
      const evil = await d2.docker(['pull', `${ref}:evil`], { allowFail: true });
      assert.notEqual(evil.code, 0);
      assert.match(evil.stderr, /trust: .*tag evil is not signed/);
      const pulled = await d2.docker(['pull', `${ref}:latest`]);
      assert.match(pulled.stdout, /Verified: latest is signed as sha256:/);
      assert.equal((await d2.docker(['run', '--rm', `${ref}:latest`])).stdout.trim(), 'web v2');
      // an unsigned image under a covered name (loaded, tagged here): refused at create
      await d2.docker(['tag', 'busybox', `${ref}:local`]);
      const local = await d2.docker(['run', '--rm', `${ref}:local`, 'true'], { allowFail: true });
      assert.notEqual(local.code, 0);
      assert.match(local.stderr, /was not pulled from .*nothing signed vouches for it/);
      // outside the policy's scopes: as before
      assert.equal((await d2.docker(['run', '--rm', 'busybox', 'echo', 'ok'])).stdout.trim(), 'ok');
      // a container created while signed does not start once the tag's signature is revoked
      const ctr = (await d2.docker(['create', `${ref}:latest`])).stdout.trim();
      await p.berth(['trust', 'revoke', `${ref}:latest`]);
      const start = await d2.docker(['start', ctr], { allowFail: true });
      assert.notEqual(start.code, 0);
      assert.match(start.stderr, /not \(or no longer\) signed/);
      // a policy that names the root key: a repository rooted in another key is refused on first sight
      await d.docker(['tag', 'busybox', `${reg.addr}/acme/pinned:1`]);
      await party('another-publisher').berth(['trust', 'sign', `${reg.addr}/acme/pinned:1`]);
      const pinned = await d2.docker(['pull', `${reg.addr}/acme/pinned:1`], { allowFail: true });
      assert.notEqual(pinned.code, 0);
      assert.match(pinned.stderr, /not signed by a root key the trust policy names/);
    } finally {
      await d2.stop();
    }
  });

  test('bad input: a wrong passphrase, a policy file that does not parse, trust commands on an unsigned repository', async () => {
    const p = pub();
    const wrong = await p.berth(['trust', 'sign', `${reg.addr}/acme/web:latest`], {
      allowFail: true,
      extra: { BERTH_TRUST_PASSPHRASE: 'not-it' },
    });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /wrong passphrase for key/);
    const none = await p.berth(['trust', 'inspect', `${reg.addr}/acme/nothing`], { allowFail: true });
    assert.match(none.stderr, /has no trust data/);
    const bad = join(d.dir, 'bad-policy.json');
    writeFileSync(bad, '{"repositories": {"x": {"require": "maybe"}}}');
    await assert.rejects(
      startDaemon({ args: ['--trust-policy', bad], loadFixture: false }),
      /require: "none" or "signed"/,
    );
    // and it refuses before making anything: no root, no networks
    const never = join(d.dir, 'never-made');
    const refused = spawnSync(
      join(REPO, 'bin/berthd'),
      ['--host', `unix://${never}.sock`, '--root', never, '--exec-root', `${never}-run`, '--trust-policy', bad],
      { encoding: 'utf8' },
    );
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /require: "none" or "signed"/);
    assert.ok(!existsSync(never) && !existsSync(`${never}-run`), 'a refused start makes no directories');
  });

  test('server-managed timestamping: the registry keeps the timestamp key and renews freshness while the publisher is offline', async () => {
    const hosted = await startBerthRegistry((dir) => [
      '--trust-timestamp-key',
      join(dir, 'timestamp.pem'),
      '--trust-timestamp-expiry',
      '1h',
    ]);
    try {
      const p = party('hosted-publisher');
      const c = party('hosted-consumer');
      const ref = `${hosted.addr}/acme/hosted`;
      const registryKey = (
        (await (await fetch(`http://${hosted.addr}/trust/v1/_timestamp-key`)).json()) as { keyid: string }
      ).keyid;
      await d.docker(['tag', 'busybox', `${ref}:1`]);
      const signed = await p.berth(['trust', 'sign', `${ref}:1`]);
      assert.match(signed.stderr, /timestamps signed by the registry/);
      assert.equal(
        readdirSync(join(p.dir, 'private')).length,
        2,
        'the publisher holds targets and snapshot keys, not the timestamp key',
      );
      await c.berth(['pull', `${ref}:1`], { trust: true });
      const first = JSON.parse((await c.berth(['trust', 'inspect', ref])).stdout)[0];
      assert.equal(
        first.AdministrativeKeys.find((k: { Name: string }) => k.Name === 'Timestamp').Keys[0].ID,
        registryKey,
      );
      // the timestamp's life over (a timestamp by the registry's key with an already-past expiry
      // lands: the registry's own key, as if hours had passed), no publisher in sight: the registry
      // renews it at once, so consumers still verify, with a newer timestamp. (The renewal timer
      // before expiry: test/unit/trust.test.ts, on a ManualClock.)
      const pem = createPrivateKey(readFileSync(join(hosted.dir, 'timestamp.pem')));
      const pubKey = publicJsonOf(pem);
      const regKey: PrivateKey = { keyid: keyIdOf(pubKey), label: 'registry timestamp', public: pubKey, key: pem };
      await pastTimestamp(ref, regKey, twoDaysAgo(), 3_600_000);
      await c.berth(['pull', `${ref}:1`], { trust: true });
      const later = JSON.parse((await c.berth(['trust', 'inspect', ref])).stdout)[0];
      assert.ok(
        later.Versions.timestamp > first.Versions.timestamp,
        `timestamp renewed: ${first.Versions.timestamp} -> ${later.Versions.timestamp}`,
      );
      assert.ok(Date.parse(later.Expires.timestamp) > Date.now());
      // the publisher signs a new tag: the registry timestamps the new snapshot at once
      await d.docker(['tag', 'busybox', `${ref}:2`]);
      await p.berth(['trust', 'sign', `${ref}:2`]);
      await c.berth(['pull', `${ref}:2`], { trust: true });
    } finally {
      await hosted.stop();
    }
  });

  test("any OCI registry carries the trust data: signed on Docker's distribution, verified there; an unsigned tag there refused", async () => {
    const dist = await startDistribution();
    try {
      const p = party('dist-publisher');
      const c = party('dist-consumer');
      const ref = `${dist.addr}/acme/plain`;
      await d.docker(['tag', 'busybox', `${ref}:1`]);
      await p.berth(['trust', 'sign', `${ref}:1`]);
      await d.docker(['rmi', `${ref}:1`]);
      await c.berth(['pull', `${ref}:1`], { trust: true });
      const inspect = JSON.parse((await c.berth(['trust', 'inspect', ref])).stdout)[0];
      assert.equal(inspect.SignedTags[0].SignedTag, '1');
      // an unsigned tag pushed there by someone else
      await d.docker(['tag', 'busybox', `${ref}:2`]);
      await d.docker(['push', `${ref}:2`]);
      const r = await c.berth(['pull', `${ref}:2`], { trust: true, allowFail: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /tag 2 is not signed/);
    } finally {
      await dist.stop();
    }
  });

  test('a policy daemon whose registry goes away: containers start while the verified data is fresh, and not after it expires', async () => {
    const gone = await startBerthRegistry();
    const policy = join(d.dir, 'policy-offline.json');
    writeFileSync(policy, JSON.stringify({ repositories: { [gone.addr]: 'signed' } }));
    const d3 = await startDaemon({ args: ['--trust-policy', policy], loadFixture: false });
    try {
      const ref = `${gone.addr}/acme/offline:1`;
      await d.docker(['tag', 'busybox', ref]);
      const op = party('offline-publisher');
      await op.berth(['trust', 'sign', ref]);
      await d3.docker(['pull', ref]);
      await gone.stop();
      assert.equal(
        (await d3.docker(['run', '--rm', ref, 'echo', 'still'])).stdout.trim(),
        'still',
        'fresh cached trust data stands in for the registry',
      );
      // time passes (no test waits for it): the daemon's last verified timestamp is replaced by one
      // signed by the publisher's timestamp key with an already-past expiry, a newer version
      const cached = join(d3.root, 'trust', gone.addr.replace(/:/g, '_'), 'acme', 'offline');
      const held = RepositoryMetadata.fromFiles(
        new Map(
          ['root.json', 'targets.json', 'snapshot.json', 'timestamp.json'].map(
            (f) => [f, readFileSync(join(cached, f))] as [string, Buffer],
          ),
        ),
      );
      const tsKey = (await op.keys.get(roleKeys(held.root, 'timestamp').keyids[0]!))!;
      const prev = Number(held.docs.get('timestamp.json')!.signed['version']);
      writeFileSync(
        join(cached, 'timestamp.json'),
        signTimestamp(held.fileBytes('snapshot.json'), prev, twoDaysAgo(), tsKey),
      );
      const stale = await d3.docker(['run', '--rm', ref, 'true'], { allowFail: true });
      assert.notEqual(stale.code, 0);
      assert.match(stale.stderr, /the registry cannot be reached .* has expired/);
    } finally {
      await d3.stop();
      await gone.stop().catch(() => undefined);
    }
  });
});
