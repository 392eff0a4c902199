/** Issue #16: the API version range and gates (spec/api-version.ts), events' since/until, plugin filters. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions, gates, versionRefusal, MIN_API_VERSION, API_VERSION } from '../../src/spec/api-version.js';
import { parseEventTime } from '../../src/engine/events.js';
import { checkPluginFilters, SwarmVerbs } from '../../src/engine/swarm.js';
import { parseAuthConfig, parseCheckpointCreate } from '../../src/spec/system-api.js';

test('versions compare as dockerd compares them', () => {
  assert.equal(compareVersions('1.41', '1.41.0'), 0);
  assert.equal(compareVersions('1.041', '1.41'), 0);
  assert.equal(compareVersions('01.41', '1.41'), 0);
  assert.equal(compareVersions('1.9', '1.12'), -1);
  assert.equal(compareVersions('2.0', '1.45'), 1);
  assert.equal(compareVersions('1', '1.12'), -1);
});

test('the served range is 1.12..1.45 with dockerd words outside it', () => {
  assert.equal(MIN_API_VERSION, '1.12');
  assert.equal(API_VERSION, '1.45');
  for (const v of ['1.12', '1.23', '1.24', '1.41', '1.45', '1.45.0']) assert.equal(versionRefusal(v), null, v);
  assert.equal(
    versionRefusal('1.11'),
    'client version 1.11 is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version',
  );
  assert.equal(versionRefusal('1.46'), 'client version 1.46 is too new. Maximum supported API version is 1.45');
});

test('gates switch where dockerd switches', () => {
  assert.deepEqual(gates('1.23'), {
    plainTextErrors: true,
    hostConfigOnStart: true,
    containerCopy: true,
    ignoreAutoRemove: true,
    volumePruneAnonymousOnly: false,
  });
  const g24 = gates('1.24');
  assert.equal(g24.plainTextErrors || g24.hostConfigOnStart || g24.containerCopy, false);
  assert.equal(g24.ignoreAutoRemove, true);
  assert.equal(gates('1.25').ignoreAutoRemove, false);
  assert.equal(gates('1.41').volumePruneAnonymousOnly, false);
  assert.equal(gates('1.42').volumePruneAnonymousOnly, true);
});

test('events since/until: seconds[.fraction] only, as dockerd reads them', () => {
  assert.equal(parseEventTime(null), null);
  assert.equal(parseEventTime(''), null);
  assert.equal(parseEventTime('0'), null); // dockerd's zero time: unset
  assert.equal(parseEventTime('1700000000'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTime('1700000000.5'), 1_700_000_000_500_000_000n);
  assert.equal(parseEventTime('1700000000.000000001'), 1_700_000_000_000_000_001n);
  assert.equal(parseEventTime('-5'), -5_000_000_000n);
  for (const [v, part] of [
    ['10m', '10m'] as const,
    ['1h30m', '1h30m'],
    ['2026-12-02T06:00:00Z', '2026-12-02T06:00:00Z'],
    ['1e9', '1e9'],
    ['17.abc', 'abc'],
  ] as Array<readonly [string, string]>)
    assert.throws(() => parseEventTime(v), { message: `strconv.ParseInt: parsing "${part}": invalid syntax` }, v);
  // the bug this fixes: an open upper bound must not be Number.MAX_SAFE_INTEGER nanoseconds (1970)
  assert.ok(Number(parseEventTime(String(Math.floor(Date.now() / 1000)))) > Number.MAX_SAFE_INTEGER);
});

test('plugin filters and swarm update versions, in dockerd words', () => {
  checkPluginFilters({ capability: ['volumedriver'], enabled: ['true', 'false'] });
  assert.throws(() => checkPluginFilters({ foo: ['x'] }), { message: "Invalid filter 'foo'" });
  assert.throws(() => checkPluginFilters({ enabled: ['x'] }), { message: "Invalid filter 'enabled=[x]'" });
  const sw = new SwarmVerbs();
  assert.throws(() => sw.update('swarm', '1'), { code: 'Unavailable' });
  assert.throws(() => sw.update('node', null), {
    message: `invalid node version '': strconv.ParseUint: parsing "": invalid syntax`,
  });
  assert.throws(() => sw.update('secret', 'x'), { message: 'invalid secret version' });
  assert.throws(() => sw.leave(), { message: 'This node is not part of a swarm' });
});

test('auth and checkpoint bodies: keys in any case, Go type errors', () => {
  assert.deepEqual(parseAuthConfig({ USERNAME: 'u', PassWord: 'p', ServerAddress: 'r.example' }), {
    username: 'u',
    password: 'p',
    serveraddress: 'r.example',
  });
  assert.deepEqual(parseAuthConfig({ auth: Buffer.from('a:b:c').toString('base64') }), {
    username: 'a',
    password: 'b:c',
    serveraddress: 'https://index.docker.io/v1/',
  });
  assert.throws(
    () => parseAuthConfig({ username: 5 }),
    /cannot unmarshal number into Go struct field AuthConfig.username/,
  );
  assert.throws(() => parseAuthConfig(null), { message: 'username and password are required' });
  assert.deepEqual(parseCheckpointCreate({ checkpointid: 'c1', EXIT: false, checkpointdir: null }), {
    CheckpointID: 'c1',
    Exit: false,
  });
});
