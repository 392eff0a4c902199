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
import { startBerthRegistry, startDistribution, type Registry } from './registry-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('trust', () => {
  let d: Daemon;
  let reg: Registry;
  /** a party: its own trust dir (keys, pinned roots) and passphrases */
  const party = (name: string) => {
    const dir = join(d.dir, `trust-${name}`);
    const env = { BERTH_TRUST_DIR: dir, BERTH_TRUST_ROOT_DIR: join(dir, 'offline-root'), BERTH_TRUST_PASSPHRASE: `${name}-repo-pass`, BERTH_TRUST_ROOT_PASSPHRASE: `${name}-root-pass` };
    const berth = (args: string[], opts: { allowFail?: boolean; trust?: boolean; extra?: Record<string, string> } = {}) =>
      d.berth(args, { allowFail: opts.allowFail ?? false, env: { ...env, ...(opts.trust ? { BERTH_CONTENT_TRUST: '1' } : {}), ...(opts.extra ?? {}) } });
    return { dir, env, berth };
  };
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
});
