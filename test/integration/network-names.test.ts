/**
 * Issue 14 (class 9): the bridge-name option (`com.docker.network.bridge.name`) is refused with a
 * 400 unless it is an interface name, nothing is made; a record an older berth stored with a bad
 * name does not stop the daemon and never reaches a script.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startDaemon, type Daemon } from './harness.js';

const run = promisify(execFile);
const BAD = [
  'x\nlink del lo',
  'bb\nlink add evil0 type dummy',
  'a"b',
  'a b',
  '../../x',
  '../all/x',
  '.',
  '..',
  'a/b',
  'br-0123456789abc',
  'a;b',
  '-x',
  'a}b',
];

describe('bridge names', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon({ loadFixture: false });
  });
  after(async () => {
    await d?.stop();
  });

  const linkNames = async () =>
    (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);

  test('a bad bridge name is a 400 and makes nothing', async () => {
    const before = await linkNames();
    const netsBefore = (await d.api('GET', '/networks')).body as unknown[];
    let refused = 0;
    for (const [i, name] of BAD.entries()) {
      const r = await d.api('POST', '/networks/create', {
        Name: `badbr${i}`,
        Options: { 'com.docker.network.bridge.name': name },
      });
      assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.text}`);
      assert.match(r.text, /invalid bridge name|longer than 15/);
      refused++;
    }
    const nonString = await d.api('POST', '/networks/create', {
      Name: 'badbrnum',
      Options: { 'com.docker.network.bridge.name': 12 },
    });
    assert.equal(nonString.status, 400, nonString.text);
    assert.equal(((await d.api('GET', '/networks')).body as unknown[]).length, netsBefore.length, 'no network stored');
    assert.deepEqual(
      (await linkNames()).filter((l) => !before.includes(l)),
      [],
      'no link made',
    );
    assert.ok((await linkNames()).includes('lo'));
    process.stderr.write(`bridge names: ${refused + 1} bad names refused with 400\n`);
    // a good custom name works
    const ok = await d.api('POST', '/networks/create', {
      Name: 'goodbr',
      Options: { 'com.docker.network.bridge.name': `bt${process.pid % 100000}` },
    });
    assert.equal(ok.status, 201, ok.text);
    assert.ok((await linkNames()).includes(`bt${process.pid % 100000}`));
    assert.equal((await d.api('DELETE', '/networks/goodbr')).status, 204);
  });

  test("a device of the bridge's name that is not berth's: 409, the device stays, nothing stored", async () => {
    const name = `bf${process.pid % 100000}`;
    await run('ip', ['link', 'add', name, 'type', 'bridge']);
    try {
      const netsBefore = (await d.api('GET', '/networks')).body as unknown[];
      const r = await d.api('POST', '/networks/create', {
        Name: 'foreignbr',
        Options: { 'com.docker.network.bridge.name': name },
      });
      assert.equal(r.status, 409, r.text);
      assert.match(r.text, /exists and is not berth's/);
      assert.ok((await linkNames()).includes(name), 'a device berth did not make is never removed');
      assert.equal(
        ((await d.api('GET', '/networks')).body as unknown[]).length,
        netsBefore.length,
        'no network stored',
      );
    } finally {
      await run('ip', ['link', 'del', name]).catch(() => undefined);
    }
  });

  test('a record stored with a bad bridge name by an older berth: the daemon starts, the network stays down, nothing runs it', async () => {
    await d.kill9();
    const db = new Database(join(d.root, 'berth.db'));
    const doc = {
      Id: 'f'.repeat(64),
      Name: 'poisoned',
      Driver: 'bridge',
      Scope: 'local',
      Created: new Date().toISOString(),
      Internal: false,
      Attachable: false,
      EnableIPv6: false,
      Labels: {},
      Options: {},
      IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: '10.213.0.0/24', Gateway: '10.213.0.1' }] },
      bridge: 'pz\nlink add evil1 type dummy',
      isDefault: false,
    };
    db.prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?)').run(doc.Id, doc.Name, JSON.stringify(doc));
    db.close();
    await d.restart();
    assert.ok(!(await linkNames()).includes('evil1'), 'the name never reached ip');
    assert.match(d.logs(), /network left down: its bridge name is not a valid interface name/);
    assert.equal((await d.api('GET', '/networks/poisoned')).status, 200);
    assert.equal((await d.api('DELETE', '/networks/poisoned')).status, 204, 'it can be removed');
    assert.ok(!(await linkNames()).includes('evil1'));
  });
});
