/**
 * Issue #7, Trust: signing with offline root keys, TUF metadata that travels with the image,
 * verification by the reference TUF client (tuf-js), content trust in the CLI, a daemon-side
 * policy, and the attacks TUF exists for — each refused with its own message.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { startDaemon, type Daemon } from './harness.js';
import { startBerthRegistry, type Registry } from './registry-harness.js';
import { endpointOf, RegistrySession } from '../../src/distribution/client.js';
import { fetchFile, fetchIndex, pushBundle } from '../../src/trust/bundle.js';
import { KeyStore, type PrivateKey } from '../../src/trust/keys.js';
import { RepositoryMetadata, roleKeys } from '../../src/trust/metadata.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The registry's current trust bundle of a repository, as files. */
async function bundleOf(name: string): Promise<Map<string, Buffer>> {
  const s = new RegistrySession(endpointOf(name), null, '');
  const idx = (await fetchIndex(s))!;
  const files = new Map<string, Buffer>();
  for (const f of idx.files.keys()) files.set(f, (await fetchFile(s, idx, f, 1 << 22))!);
  return files;
}

/** What an attacker holding some keys can publish: the bundle edited and signed with those keys, pushed straight to the registry. */
async function forge(name: string, edit: (m: RepositoryMetadata) => void, keys: { root?: PrivateKey[]; targets?: PrivateKey[]; releases?: PrivateKey[]; snapshot: PrivateKey; timestamp: PrivateKey }): Promise<void> {
  const m = RepositoryMetadata.fromFiles(await bundleOf(name));
  edit(m);
  m.seal({ now: Date.now(), sign: (f) => (f === 'root.json' ? keys.root : f === 'targets.json' ? keys.targets : f === 'releases.json' ? keys.releases : f === 'snapshot.json' ? [keys.snapshot] : undefined) ?? [], timestampKey: keys.timestamp });
  await pushBundle(new RegistrySession(endpointOf(name), null, ''), m.files());
}

/** Points a repository's `_trust` tag back at an earlier artifact (a replay). */
async function replay(name: string, manifest: Buffer): Promise<void> {
  const ep = endpointOf(name);
  const r = await fetch(`${ep.base}/v2/${ep.repo}/manifests/_trust`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(r.status, 201);
}

async function trustManifest(name: string): Promise<Buffer> {
  const ep = endpointOf(name);
  return Buffer.from(await (await fetch(`${ep.base}/v2/${ep.repo}/manifests/_trust`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer());
}

describe('trust', () => {
  let d: Daemon;
  let reg: Registry;
  /** a party: its own trust dir (keys, pinned roots) and passphrases */
  const party = (name: string, pass = `${name}-repo-pass`) => {
    const dir = join(d.dir, `trust-${name}`);
    const env = { BERTH_TRUST_DIR: dir, BERTH_TRUST_ROOT_DIR: join(dir, 'offline-root'), BERTH_TRUST_PASSPHRASE: pass, BERTH_TRUST_ROOT_PASSPHRASE: `${name}-root-pass` };
    const berth = (args: string[], opts: { allowFail?: boolean; trust?: boolean; extra?: Record<string, string> } = {}) =>
      d.berth(args, { allowFail: opts.allowFail ?? false, env: { ...env, ...(opts.trust ? { BERTH_CONTENT_TRUST: '1' } : {}), ...(opts.extra ?? {}) } });
    const keys = new KeyStore(dir, join(dir, 'offline-root'), { get: async (kind) => (kind === 'root' ? env.BERTH_TRUST_ROOT_PASSPHRASE : pass) });
    return { dir, env, berth, keys };
  };
  const pub = () => party('pub');
  const consumer = () => party('consumer');
  /** what a refused pull must not leave: the image list and the content store, unchanged */
  const snapshotState = async () => ({ images: (await d.docker(['images', '-a', '--digests', '--format', '{{.Repository}}:{{.Tag}}@{{.Digest}} {{.ID}}'])).stdout.split('\n').sort().join('\n'), blobs: readdirSync(join(d.root, 'content', 'blobs', 'sha256')).sort().join(',') });
  /** builds an image whose /index.html says `text`, tagged `ref` */
  const webImage = async (ref: string, text: string) => {
    const ctx = join(d.dir, `ctx-${text.replace(/\W/g, '')}`);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'Dockerfile'), `FROM busybox\nRUN echo '${text}' > /index.html\nCMD ["cat", "/index.html"]\n`);
    await d.berth(['build', '-q', '-t', ref, ctx]);
  };
  const runOut = async (args: string[], p: ReturnType<typeof party>, trust = true) => (await p.berth(['run', '--rm', ...args], { trust })).stdout.trim();

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
    writeFileSync(join(meta, 'root.json'), Buffer.from(await (await fetch(`${base}/metadata/1.root.json`)).arrayBuffer()));
    const targets = join(d.dir, 'tufjs-targets');
    mkdirSync(targets);
    const u = new Updater({ metadataDir: meta, metadataBaseUrl: `${base}/metadata`, targetDir: targets, targetBaseUrl: `http://${reg.addr}/v2/acme/web/manifests` });
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
    const server = (await c.berth(['run', '-d', `${ref}:latest`, 'sleep', '300'], { trust: true })).stdout.trim().split('\n').pop()!;
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
    await c.berth(['pull', `${ref}:latest`], { trust: true });
    assert.equal(await runOut([`${ref}:latest`], c), 'web v1');
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Running}}', server])).stdout.trim(), 'true', 'v1 keeps running');
    // the publisher signs v2: it runs
    await webImage(`${ref}:latest`, 'web v2');
    await p.berth(['trust', 'sign', `${ref}:latest`]);
    await d.docker(['rmi', `${ref}:latest`]);
    assert.equal(await runOut([`${ref}:latest`], c), 'web v2');
    // trust off: the registry's tag is taken as it is (no cost, no check)
    const off = await c.berth(['pull', `${ref}:evil`]);
    assert.equal(off.code, 0);
    assert.equal(await runOut([`${ref}:evil`], c, false), 'defaced');
    await d.docker(['rm', '-f', server]);
  });
});
