/**
 * Issue 14 (class 9): `login` keeps secrets where config.json says, as the docker CLI does:
 * credsStore / credHelpers name docker-credential-* helpers (the secret goes to the helper, never
 * into config.json), plain base64 only without a helper (with docker's warning, file 0600); a
 * corrupt config.json is an error and stays untouched. The helper here is a real program on PATH
 * speaking the helper protocol (store/get/erase on stdin/stdout), keeping its secrets in its own file.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';
import { htpasswd, startBerthRegistry, type Registry } from './registry-harness.js';

const HELPER = `#!/usr/bin/env node
// a docker credential helper keeping its secrets in $HELPER_DB (JSON: server -> {Username, Secret}); logs each call
const fs = require('fs');
const db = process.env.HELPER_DB;
const verb = process.argv[2];
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const all = fs.existsSync(db) ? JSON.parse(fs.readFileSync(db, 'utf8')) : {};
  fs.appendFileSync(db + '.log', require('path').basename(process.argv[1]) + ' ' + verb + '\\n');
  if (verb === 'store') {
    const c = JSON.parse(input);
    all[c.ServerURL] = { Username: c.Username, Secret: c.Secret };
    fs.writeFileSync(db, JSON.stringify(all));
  } else if (verb === 'get') {
    const c = all[input.trim()];
    if (!c) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
    process.stdout.write(JSON.stringify({ ServerURL: input.trim(), Username: c.Username, Secret: c.Secret }));
  } else if (verb === 'erase') {
    if (!all[input.trim()]) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
    delete all[input.trim()];
    fs.writeFileSync(db, JSON.stringify(all));
  } else process.exit(2);
});
`;

describe('login and credential helpers', () => {
  let d: Daemon;
  let reg: Registry;
  let bin = '';
  let cfgDir = '';
  let cfg = '';
  let helperDb = '';
  let env: NodeJS.ProcessEnv = {};
  const config = () =>
    JSON.parse(readFileSync(cfg, 'utf8')) as {
      auths?: Record<string, Record<string, string>>;
      credsStore?: string;
      credHelpers?: Record<string, string>;
    };
  const calls = () => (existsSync(`${helperDb}.log`) ? readFileSync(`${helperDb}.log`, 'utf8') : '');

  before(async () => {
    d = await startDaemon();
    reg = await startBerthRegistry((dir) => [
      '--htpasswd',
      htpasswd(dir, { bob: 'pw-bob-Secret1' }),
      '--auth',
      'token',
    ]);
    bin = join(d.dir, 'helper-bin');
    mkdirSync(bin);
    for (const name of ['berthtest', 'berthother']) {
      writeFileSync(join(bin, `docker-credential-${name}`), HELPER);
      chmodSync(join(bin, `docker-credential-${name}`), 0o755);
    }
    cfgDir = d.env['DOCKER_CONFIG']!;
    cfg = join(cfgDir, 'config.json');
    helperDb = join(d.dir, 'helper-db.json');
    env = { PATH: `${bin}:${process.env['PATH'] ?? ''}`, HELPER_DB: helperDb };
    await d.docker(['tag', 'busybox', `${reg.addr}/priv/bb:1`]);
  });
  after(async () => {
    await d?.stop();
    await reg?.stop();
  });

  test('credsStore: the secret goes to the helper, config.json keeps an empty entry; push and pull read it back (berth and docker)', async () => {
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(
      cfg,
      JSON.stringify({
        credsStore: 'berthtest',
        auths: { [reg.addr]: { auth: Buffer.from('old:plain').toString('base64') } },
        psFormat: 'table {{.ID}}',
      }),
    );
    const r = await d.berth(['login', '-u', 'bob', '--password-stdin', reg.addr], { input: 'pw-bob-Secret1\n', env });
    assert.match(r.stdout, /Login Succeeded/);
    assert.doesNotMatch(r.stderr, /unencrypted/);
    const text = readFileSync(cfg, 'utf8');
    assert.ok(
      !text.includes('pw-bob-Secret1') &&
        !text.includes(Buffer.from('bob:pw-bob-Secret1').toString('base64')) &&
        !text.includes(Buffer.from('old:plain').toString('base64')),
      'no secret in config.json',
    );
    assert.deepEqual(config().auths?.[reg.addr], {}, "docker's empty entry");
    assert.equal((config() as Record<string, unknown>)['psFormat'], 'table {{.ID}}', 'other settings kept');
    assert.deepEqual(JSON.parse(readFileSync(helperDb, 'utf8'))[reg.addr], {
      Username: 'bob',
      Secret: 'pw-bob-Secret1',
    });
    // the credentials are used from the helper
    assert.match((await d.berth(['push', `${reg.addr}/priv/bb:1`], { env })).stdout, /digest: sha256:/);
    await d.docker(['rmi', `${reg.addr}/priv/bb:1`]);
    assert.match((await d.berth(['pull', `${reg.addr}/priv/bb:1`], { env })).stdout, /Status: /);
    await d.docker(['rmi', `${reg.addr}/priv/bb:1`]);
    assert.equal(
      (await d.docker(['pull', `${reg.addr}/priv/bb:1`], { env })).code,
      0,
      'the docker CLI reads what berth stored, through the same helper',
    );
    assert.match(calls(), /docker-credential-berthtest store/);
    assert.match(calls(), /docker-credential-berthtest get/);
    // logout erases it from the helper and config.json
    assert.match((await d.berth(['logout', reg.addr], { env })).stdout, /Removing login credentials/);
    assert.equal(JSON.parse(readFileSync(helperDb, 'utf8'))[reg.addr], undefined);
    assert.equal(config().auths?.[reg.addr], undefined);
    await d.docker(['rmi', `${reg.addr}/priv/bb:1`]);
    assert.notEqual(
      (await d.berth(['pull', `${reg.addr}/priv/bb:1`], { env, allowFail: true })).code,
      0,
      'logged out: refused',
    );
  });

  test('credHelpers: the registry’s own helper wins over credsStore', async () => {
    rmSync(`${helperDb}.log`, { force: true });
    writeFileSync(cfg, JSON.stringify({ credsStore: 'missing-helper', credHelpers: { [reg.addr]: 'berthother' } }));
    assert.match(
      (await d.berth(['login', '-u', 'bob', '--password-stdin', reg.addr], { input: 'pw-bob-Secret1\n', env })).stdout,
      /Login Succeeded/,
    );
    assert.match(calls(), /docker-credential-berthother store/);
    assert.ok(!readFileSync(cfg, 'utf8').includes('pw-bob'));
    assert.match((await d.berth(['pull', `${reg.addr}/priv/bb:1`], { env })).stdout, /Status: /);
    await d.berth(['logout', reg.addr], { env });
  });

  test('a helper that is not installed is an error; nothing is written', async () => {
    const before = JSON.stringify({ credsStore: 'not-installed-helper' });
    writeFileSync(cfg, before);
    const r = await d.berth(['login', '-u', 'bob', '--password-stdin', reg.addr], {
      input: 'pw-bob-Secret1\n',
      env,
      allowFail: true,
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /docker-credential-not-installed-helper not found/);
    assert.equal(readFileSync(cfg, 'utf8'), before);
  });

  test('a corrupt config.json is an error and stays as it was (login, logout, pull)', async () => {
    let refused = 0;
    for (const bad of ['{"auths": {', 'not json', '[1,2]', '{"auths": "x"}', '"str"']) {
      writeFileSync(cfg, bad);
      for (const args of [
        ['login', '-u', 'bob', '--password-stdin', reg.addr],
        ['logout', reg.addr],
        ['pull', `${reg.addr}/priv/bb:1`],
      ]) {
        const r = await d.berth(args, { input: 'pw-bob-Secret1\n', env, allowFail: true });
        assert.notEqual(r.code, 0, `${args[0]} with ${JSON.stringify(bad)}`);
        assert.match(r.stderr, /config\.json/);
        assert.equal(readFileSync(cfg, 'utf8'), bad, 'untouched');
        refused++;
      }
    }
    process.stderr.write(`credentials: ${refused} commands refused on a corrupt config.json\n`);
  });

  test('without a helper: base64 in config.json as docker does, with its warning, the file 0600', async () => {
    rmSync(cfg, { force: true });
    const r = await d.berth(['login', '-u', 'bob', '--password-stdin', reg.addr], { input: 'pw-bob-Secret1\n', env });
    assert.match(r.stdout, /Login Succeeded/);
    assert.match(r.stderr, /WARNING! Your password will be stored unencrypted/);
    assert.equal(Buffer.from(config().auths![reg.addr]!['auth']!, 'base64').toString(), 'bob:pw-bob-Secret1');
    assert.equal(statSync(cfg).mode & 0o777, 0o600);
    await d.berth(['logout', reg.addr], { env });
  });
});
