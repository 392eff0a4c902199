/** Logic of the registry client and server without a network: endpoints, challenges, manifests, access. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { endpointOf, parseChallenge } from '../../src/distribution/client.js';
import { parsePlatform } from '../../src/distribution/pull.js';
import { bar } from '../../src/distribution/transfer.js';
import { isRepoName, parseManifest, RegistryError } from '../../src/spec/distribution.js';
import { Authorizer } from '../../src/registry/auth.js';

const bcrypt = createRequire(import.meta.url)('bcryptjs') as { hashSync(pw: string, rounds: number): string };

test('endpoints: Docker Hub names, loopback and --insecure-registry over HTTP, others HTTPS, mirrors', () => {
  assert.deepEqual(endpointOf('busybox'), {
    host: 'docker.io',
    repo: 'library/busybox',
    base: 'https://registry-1.docker.io',
  });
  assert.deepEqual(endpointOf('team/app'), {
    host: 'docker.io',
    repo: 'team/app',
    base: 'https://registry-1.docker.io',
  });
  assert.equal(endpointOf('busybox', { mirrors: ['http://mirror:5000'] }).base, 'http://mirror:5000');
  assert.equal(endpointOf('127.0.0.1:5000/a/b').base, 'http://127.0.0.1:5000');
  assert.equal(endpointOf('localhost:5000/a').base, 'http://localhost:5000');
  assert.equal(endpointOf('reg.example:5000/a').base, 'https://reg.example:5000');
  assert.equal(endpointOf('reg.example:5000/a', { insecure: ['reg.example:5000'] }).base, 'http://reg.example:5000');
  assert.equal(endpointOf('reg.example:5000/a/b/c').repo, 'a/b/c');
});

test('WWW-Authenticate challenges', () => {
  assert.deepEqual(
    parseChallenge(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
    ),
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
    },
  );
  assert.equal(parseChallenge('Basic realm="x"').scheme, 'basic');
});

test('names, platforms, progress bars', () => {
  for (const ok of ['a', 'a/b', 'a-b/c__d', 'a.b/c--d/e']) assert.ok(isRepoName(ok), ok);
  for (const bad of ['A', 'a/../b', '../a', 'a//b', '-a', 'a/', 'a/.b']) assert.ok(!isRepoName(bad), bad);
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  // dockerd 20.10 (containerd's platforms.Parse): an OS alone takes the host's architecture, an
  // architecture alone linux; aliases are normalized; the words of its 400s
  assert.deepEqual(parsePlatform('linux'), { os: 'linux', architecture: process.arch === 'arm64' ? 'arm64' : 'amd64' });
  assert.deepEqual(parsePlatform('aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('LINUX/X86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/armhf'), { os: 'linux', architecture: 'arm' }); // v7 is arm's default
  assert.deepEqual(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm' });
  assert.deepEqual(parsePlatform('linux/arm/7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.throws(
    () => parsePlatform('foo/bar/baz/qux'),
    /^BerthError: "foo\/bar\/baz\/qux": cannot parse platform specifier: invalid argument$/,
  );
  assert.throws(() => parsePlatform('foo'), /"foo": unknown operating system or architecture: invalid argument/);
  assert.throws(() => parsePlatform('linux/a.b'), /"a\.b" is an invalid component of "linux\/a\.b"/);
  assert.throws(() => parsePlatform('linux/*'), /wildcards not yet supported/);
  assert.match(bar(5, 10), /^\[={24}> {25}\] 0\.0kB\/0\.0kB$/);
});

test('manifest parsing: types, invalid input, schema 1', () => {
  const m = parseManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'x', digest: `sha256:${'a'.repeat(64)}`, size: 1 },
        layers: [],
      }),
    ),
  );
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof RegistryError ? e.code : 'other';
    }
    return 'none';
  };
  assert.equal(
    code(() => parseManifest(Buffer.from('nope'))),
    'MANIFEST_INVALID',
  );
  assert.equal(
    code(() => parseManifest(Buffer.from('{"schemaVersion":1}'))),
    'UNSUPPORTED',
  );
  assert.equal(
    code(() => parseManifest(Buffer.from('{"schemaVersion":2,"mediaType":"text/plain"}'))),
    'MANIFEST_INVALID',
  );
  assert.equal(
    code(() =>
      parseManifest(Buffer.from('{"schemaVersion":2,"config":{"mediaType":"x","digest":"nope","size":1},"layers":[]}')),
    ),
    'MANIFEST_INVALID',
  );
  assert.equal(
    code(() => parseManifest(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}'))),
    'MANIFEST_INVALID',
  );
});

test('access: public patterns, ACL rules, deletes only when enabled; tokens carry only what was granted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-auth-'));
  const ht = join(dir, 'htpasswd');
  writeFileSync(ht, `alice:${bcrypt.hashSync('a', 4).replace(/^\$2a\$/, '$2y$')}\nbob:${bcrypt.hashSync('b', 4)}\n`);
  const auth = new Authorizer({
    htpasswd: ht,
    public: ['pub/**'],
    deleteEnabled: true,
    mode: 'token',
    acl: [
      { user: 'alice', repos: ['alice/*', 'shared/**'], actions: ['pull', 'push', 'delete'] },
      { user: '*', repos: ['shared/**'], actions: ['pull'] },
    ],
  });
  assert.deepEqual(auth.granted(null, 'pub/x/y'), ['pull']);
  assert.deepEqual(auth.granted(null, 'alice/x'), []);
  assert.deepEqual(auth.granted('alice', 'alice/x').sort(), ['delete', 'pull', 'push']);
  assert.deepEqual(auth.granted('alice', 'alice/x/y'), [], '* stays within one path component');
  assert.deepEqual(auth.granted('bob', 'shared/a/b'), ['pull']);
  assert.equal(
    auth.basicUser(`Basic ${Buffer.from('alice:a').toString('base64')}`),
    'alice',
    '$2y$ hashes (htpasswd -B) work',
  );
  assert.throws(
    () => auth.basicUser(`Basic ${Buffer.from('alice:wrong').toString('base64')}`),
    /invalid username or password/,
  );
  assert.equal(auth.basicUser(`Basic ${Buffer.from(':').toString('base64')}`), null, 'empty credentials are anonymous');
  const t = auth.verifyToken(auth.issueToken('bob', ['repository:shared/a:pull,push', 'repository:alice/x:pull']));
  assert.deepEqual(Object.fromEntries(t.access), { 'shared/a': ['pull'], 'alice/x': [] });
  const forged = auth.issueToken('bob', []).replace(/\.[^.]+$/, '.AAAA');
  assert.throws(() => auth.verifyToken(forged), /signature/);
  assert.throws(
    () => new Authorizer({ htpasswd: ht }).verifyToken(auth.issueToken('bob', [])),
    /signature/,
    'another key does not verify it',
  );
  const noDelete = new Authorizer({
    htpasswd: ht,
    acl: [{ user: 'alice', repos: ['**'], actions: ['pull', 'push', 'delete'] }],
  });
  assert.deepEqual(noDelete.granted('alice', 'any').sort(), ['pull', 'push']);
});
