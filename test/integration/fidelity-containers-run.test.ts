/**
 * Issue #16 (Fidelity), containers on the running side: wait with restart policies, the
 * restarting status, OOMKilled, stats, `rm --link`, log driver none, commit of an exiting
 * container, exec's Tty and start failures, list's limit, and the events dockerd emits.
 * Each expectation cites what dockerd 20.10.24 (Debian's, on this machine: cgroup v1, crun vs
 * runc aside) answered to the same request; the test runs against berthd only.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { eventually, startDaemon, type Daemon } from './harness.js';

interface Ev {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** A request with a JSON body; the whole answer as bytes. */
function raw(
  d: Daemon,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { socketPath: d.sock, path, method, headers: payload ? { 'Content-Type': 'application/json' } : {} },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${path} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The first `n` lines of a streamed answer (the request is then dropped), and whether the stream ended first. */
function lines(
  d: Daemon,
  path: string,
  n: number,
  during?: () => Promise<unknown>,
): Promise<{ lines: string[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const got: string[] = [];
    let buf = '';
    const req = http.request({ socketPath: d.sock, path, method: 'GET' }, (r) => {
      void during?.();
      r.on('data', (c: Buffer) => {
        buf += c.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          got.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        if (got.length >= n) {
          req.destroy();
          resolve({ lines: got.slice(0, n), ended: false });
        }
      });
      r.on('end', () => resolve({ lines: got, ended: true }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`${path}: ${got.length} of ${n} lines in 20 s`)));
    req.on('error', (e) => (got.length >= n ? undefined : reject(e)));
    req.end();
  });
}

const json = (b: Buffer) => JSON.parse(b.toString()) as Record<string, unknown>;
const cgroupV2 = existsSync('/sys/fs/cgroup/cgroup.controllers');

describe('containers, running side, as dockerd answers', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  const inspect = async (name: string) => {
    const r = await d.api('GET', `/containers/${name}/json`);
    assert.equal(r.status, 200, r.text);
    return r.body as {
      Id: string;
      State: Record<string, unknown>;
      RestartCount: number;
      HostConfig: Record<string, unknown>;
    };
  };
  const events = async (t0: number, filter?: Record<string, string[]>): Promise<Ev[]> => {
    const f = filter ? `&filters=${encodeURIComponent(JSON.stringify(filter))}` : '';
    const r = await d.api('GET', `/events?since=${t0}&until=${Math.ceil(Date.now() / 1000) + 1}${f}`);
    assert.equal(r.status, 200);
    return r.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Ev);
  };

  test('wait: each condition on a --restart=always container returns with the exit dockerd does', async () => {
    await d.docker([
      'run',
      '-d',
      '--name',
      'wa',
      '--restart=always',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'sleep 1; exit 3',
    ]);
    // dockerd 20.10: both answered {"Error":null,"StatusCode":3} after ~1 s (berth never answered)
    for (const q of ['', '?condition=not-running', '?condition=next-exit']) {
      const r = await raw(d, 'POST', `/containers/wa/wait${q}`, undefined, 15_000);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString().trim(), '{"Error":null,"StatusCode":3}', q);
    }
    // restarting: State.Restarting and Running true, Pid 0, Status "restarting" (dockerd's
    // inspect during the back-off); never "exited" in between (berth showed it during the restart)
    const statuses = new Set<string>();
    const seen = await eventually(
      async () => {
        const s = (await inspect('wa')).State;
        statuses.add(String(s['Status']));
        return s['Status'] === 'restarting' ? s : undefined;
      },
      20_000,
      'the restarting status',
    );
    assert.equal(seen['Restarting'], true);
    assert.equal(seen['Running'], true);
    assert.equal(seen['Pid'], 0);
    assert.equal(seen['ExitCode'], 3);
    // begun while restarting: a restarting container counts as running, the wait is for the next exit
    const r = await raw(d, 'POST', '/containers/wa/wait', undefined, 15_000);
    assert.equal(r.body.toString().trim(), '{"Error":null,"StatusCode":3}');
    for (let i = 0; i < 20; i++) statuses.add(String((await inspect('wa')).State['Status']));
    assert.deepEqual(
      [...statuses].filter((s) => s !== 'running' && s !== 'restarting'),
      [],
      'only running and restarting',
    );
    assert.ok((await inspect('wa')).RestartCount >= 2);
    // removed: waits for the removal, through the restarts (dockerd: {"Error":null,"StatusCode":3})
    const removed = raw(d, 'POST', '/containers/wa/wait?condition=removed', undefined, 20_000);
    let done = false;
    void removed.then(() => (done = true));
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(done, false, 'removed does not return on an exit');
    await d.docker(['rm', '-f', 'wa']);
    const rr = await removed;
    assert.match(rr.body.toString(), /^\{"Error":null,"StatusCode":\d+\}\n?$/);
  });

  test('kill: a manual stop for the restart policy; a kill while restarting cancels the restart (204)', async () => {
    // dockerd 20.10: `docker kill` of a --restart=always container -> "exited 0 137" two seconds later
    await d.docker(['run', '-d', '--name', 'k1', '--restart=always', '--network', 'none', 'busybox', 'sleep', '300']);
    await d.docker(['kill', 'k1']);
    await new Promise((res) => setTimeout(res, 2000));
    let c = await inspect('k1');
    assert.equal(c.State['Status'], 'exited');
    assert.equal(c.State['ExitCode'], 137);
    assert.equal(c.RestartCount, 0);
    // dockerd: POST kill while restarting -> 204, then "exited" for good, no kill event
    const t0 = Math.floor(Date.now() / 1000) - 1;
    await d.docker([
      'run',
      '-d',
      '--name',
      'k2',
      '--restart=always',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'exit 2',
    ]);
    // caught in a long back-off (1.6 s from the 5th restart on), not while the restart starts it
    await eventually(
      async () => {
        const x = await inspect('k2');
        return x.State['Status'] === 'restarting' && x.RestartCount >= 5;
      },
      30_000,
      'restarting, the 5th time',
    );
    const r = await d.api('POST', '/containers/k2/kill');
    assert.equal(r.status, 204, r.text); // berth answered 409
    await new Promise((res) => setTimeout(res, 2000));
    c = await inspect('k2');
    assert.equal(c.State['Status'], 'exited');
    assert.equal(c.State['ExitCode'], 2);
    const count = c.RestartCount;
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal((await inspect('k2')).RestartCount, count, 'no more restarts');
    assert.deepEqual(
      (await events(t0, { container: [c.Id], event: ['kill'] })).map((e) => e.Action),
      [],
    );
    await d.docker(['rm', '-f', 'k1', 'k2']);
  });

  test('RestartCount: counted at the exit it follows, reset by a user start (on-failure:2)', async () => {
    // dockerd 20.10: "2 exited"; after `docker start`: "1 restarting" at once, then "2 exited"
    await d.docker([
      'run',
      '-d',
      '--name',
      'rc',
      '--restart=on-failure:2',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'exit 1',
    ]);
    const settled = async () =>
      eventually(
        async () => {
          const c = await inspect('rc');
          return c.State['Status'] === 'exited' && c.RestartCount === 2 ? c : undefined;
        },
        20_000,
        'exited after 2 restarts',
      );
    await settled();
    const t0 = Math.ceil(Date.now() / 1000); // the next second: events from t0 on are this start's
    await new Promise((res) => setTimeout(res, t0 * 1000 - Date.now() + 50));
    await d.docker(['start', 'rc']);
    const c = await eventually(
      async () => {
        const x = await inspect('rc');
        const starts = (await events(t0, { container: [x.Id], event: ['start'] })).length;
        return x.State['Status'] === 'exited' && starts >= 3 ? x : undefined;
      },
      20_000,
      'the user start and 2 more restarts',
    );
    assert.equal(c.State['ExitCode'], 1);
    assert.equal(c.RestartCount, 2);
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal((await events(t0, { container: [c.Id], event: ['start'] })).length, 3, 'no third restart');
    await d.docker(['rm', 'rc']);
  });

  test('refusals by status: dockerd codes and words (unpause of a container not paused is its 500)', async () => {
    await d.docker(['create', '--name', 'rq', 'busybox', 'sleep', '100']);
    const id = (await inspect('rq')).Id;
    // dockerd 20.10 to each, on a created container
    const cases: Array<[string, string, number, string]> = [
      ['POST', '/containers/rq/unpause', 500, `Container ${id} is not paused`],
      ['POST', '/containers/rq/kill', 409, `Cannot kill container: rq: Container ${id} is not running`],
      ['POST', '/containers/rq/pause', 409, `Container ${id} is not running`],
      ['POST', '/containers/rq/resize?h=1&w=1', 409, `Container ${id} is not running`],
      ['GET', '/containers/rq/top', 409, `Container ${id} is not running`],
    ];
    for (const [method, path, status, message] of cases) {
      const r = await d.api(method, path);
      assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
      assert.deepEqual(r.body, { message });
    }
    await d.docker(['rm', 'rq']);
  });

  test('rename: dockerd 20.10 codes and words', async () => {
    await d.docker(['create', '--name', 'rn', 'busybox', 'true']);
    await d.docker(['create', '--name', 'rn2', 'busybox', 'true']);
    const rn2 = (await inspect('rn2')).Id;
    const cases: Array<[string, number, string]> = [
      ['rn', 400, 'Renaming a container with the same name as its current name'],
      ['', 400, 'Neither old nor new names may be empty'],
      [
        'bad%20name',
        400,
        'Error when allocating new name: Invalid container name (/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed',
      ],
      [
        'rn2',
        409,
        `Error when allocating new name: Conflict. The container name "/rn2" is already in use by container "${rn2}". You have to remove (or rename) that container to be able to reuse that name.`,
      ],
    ];
    for (const [name, status, message] of cases) {
      const r = await d.api('POST', `/containers/rn/rename?name=${name}`);
      assert.equal(r.status, status, r.text);
      assert.deepEqual(r.body, { message });
    }
    await d.docker(['rm', 'rn', 'rn2']);
  });

  test('wait on a created container: not-running at once (0), next-exit on the exit after a start', async () => {
    await d.docker(['create', '--name', 'wc', '--network', 'none', 'busybox', 'sh', '-c', 'exit 7']);
    // dockerd: {"Error":null,"StatusCode":0} at once
    const now = await raw(d, 'POST', '/containers/wc/wait');
    assert.equal(now.body.toString().trim(), '{"Error":null,"StatusCode":0}');
    const next = raw(d, 'POST', '/containers/wc/wait?condition=next-exit', undefined, 15_000);
    await new Promise((res) => setTimeout(res, 300));
    await d.docker(['start', 'wc']);
    assert.equal((await next).body.toString().trim(), '{"Error":null,"StatusCode":7}');
    await d.docker(['rm', '-f', 'wc']);
  });

  test('list: limit > 0 implies all (a created container is listed), limit 0 does not', async () => {
    await d.docker(['create', '--name', 'lc', 'busybox', 'true']);
    await d.docker(['run', '-d', '--name', 'lr', '--network', 'none', 'busybox', 'sleep', '300']);
    const names = async (q: string) =>
      ((await d.api('GET', `/containers/json${q}`)).body as Array<{ Names: string[] }>).map((c) => c.Names[0]);
    // dockerd 20.10: ?limit=5 -> ["/created1","/e1"]; ?limit=0 and ?limit=-1 -> ["/e1"]
    assert.deepEqual(await names('?limit=5'), ['/lr', '/lc']);
    assert.deepEqual(await names('?limit=1'), ['/lr']);
    assert.deepEqual(await names('?limit=0'), ['/lr']);
    assert.deepEqual(await names('?limit=-1'), ['/lr']);
    await d.docker(['rm', '-f', 'lc', 'lr']);
  });

  test('rm --link: removes the legacy link, with dockerd codes and words', async () => {
    await d.docker(['run', '-d', '--name', 'lk-t', 'busybox', 'sleep', '300']);
    await d.docker(['run', '-d', '--name', 'lk-u', '--link', 'lk-t:db', 'busybox', 'sleep', '300']);
    assert.deepEqual((await inspect('lk-u')).HostConfig['Links'], ['/lk-t:/lk-u/db']);
    const hosts = async () => (await d.docker(['exec', 'lk-u', 'cat', '/etc/hosts'])).stdout;
    assert.match(await hosts(), /\tdb [0-9a-f]{12} lk-t\n/);
    // dockerd: a plain name is 500 "Conflict, cannot remove the default link name of the container"
    let r = await d.api('DELETE', '/containers/lk-u?link=1');
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, { message: 'Conflict, cannot remove the default link name of the container' });
    r = await d.api('DELETE', '/containers/nosuch?link=1');
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { message: 'No such container: nosuch' });
    // the docker CLI sends DELETE /containers/lk-u/db?link=1
    const out = await d.docker(['rm', '--link', 'lk-u/db']);
    assert.equal(out.stdout.trim(), 'lk-u/db');
    assert.equal((await inspect('lk-u')).HostConfig['Links'], null);
    assert.doesNotMatch(await hosts(), /\bdb\b/, 'the running parent forgets the alias at once');
    // dockerd once it is gone: 404 "No such container: lu/db"
    r = await d.api('DELETE', '/containers/lk-u/db?link=1');
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { message: 'No such container: lk-u/db' });
    // both containers are still there and run
    assert.equal((await inspect('lk-t')).State['Running'], true);
    assert.equal((await inspect('lk-u')).State['Running'], true);
    await d.docker(['rm', '-f', 'lk-t', 'lk-u']);
  });

  test('log driver none: accepted, output still attached, nothing kept, logs refused with 501', async () => {
    // dockerd: `docker run --log-driver none busybox echo hi` prints hi; `docker logs` exits 1 with
    // "Error response from daemon: configured logging driver does not support reading" (501)
    const devNull = statSync('/dev/null').mode;
    const run = await d.docker([
      'run',
      '--name',
      'ln',
      '--log-driver',
      'none',
      '--network',
      'none',
      'busybox',
      'echo',
      'hi',
    ]);
    assert.equal(run.stdout, 'hi\n');
    // its "log" is the host's /dev/null, and that is not berth's to chmod (it once made it 0600)
    assert.equal(statSync('/dev/null').mode, devNull, "the host's /dev/null keeps its mode");
    const c = await inspect('ln');
    assert.deepEqual(c.HostConfig['LogConfig'], { Type: 'none', Config: {} });
    const logs = await d.docker(['logs', 'ln'], { allowFail: true });
    assert.equal(logs.code, 1);
    assert.equal(logs.stderr.trim(), 'Error response from daemon: configured logging driver does not support reading');
    const r = await d.api('GET', '/containers/ln/logs?stdout=1');
    assert.equal(r.status, 501);
    assert.deepEqual(r.body, { message: 'configured logging driver does not support reading' });
    // no stream chosen is still the first check (dockerd's order)
    assert.equal((await d.api('GET', '/containers/ln/logs')).status, 400);
    assert.equal(existsSync(join(d.root, 'containers', c.Id, 'ctr.log')), false, 'no log file');
    await d.docker(['rm', 'ln']);
  });

  test('logs: the output after the last newline is kept (dockerd 20.10 showed it last)', async () => {
    await d.docker([
      'run',
      '--name',
      'lg',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo a; printf c; echo; printf no-newline',
    ]);
    const out = await d.docker(['logs', 'lg']);
    assert.equal(out.stdout, 'a\nc\nno-newline'); // berth lost "no-newline"
    const tail = await d.docker(['logs', '--tail', '1', 'lg']);
    assert.equal(tail.stdout, 'no-newline');
    // dockerd 20.10: a tail Atoi cannot read, or a negative one, is every line (200; berth said 400)
    for (const t of ['abc', '-5', '1.5', 'ALL', '%201']) {
      const r = await raw(d, 'GET', `/containers/lg/logs?stdout=1&tail=${t}`);
      assert.equal(r.status, 200, t);
      assert.match(r.body.toString(), /no-newline$/, t);
      assert.ok(r.body.toString().includes('a\n'), `${t}: every line`);
    }
    const att = await d.docker(['start', '-a', 'lg']);
    assert.equal(att.stdout, 'a\nc\nno-newline');
    await d.docker(['rm', 'lg']);
  });

  test('exec: the create-time Tty stays, the start Tty frames the stream; a start failure exits 126', async () => {
    await d.docker(['run', '-d', '--name', 'ex', '--network', 'none', 'busybox', 'sleep', '300']);
    const create = async (tty: boolean) => {
      const r = await d.api('POST', '/containers/ex/exec', {
        Cmd: ['sh', '-c', 'tty; echo err >&2'],
        Tty: tty,
        AttachStdout: true,
        AttachStderr: true,
      });
      assert.equal(r.status, 201, r.text);
      return (r.body as { Id: string }).Id;
    };
    // dockerd 20.10, created Tty:true: started with {"Tty":false} or {} -> "/dev/pts/0\r\nerr\r\n" in
    // stdout frames (1,0,0,0,size); started with {"Tty":true} -> the same bytes raw
    for (const start of [{ Tty: false }, {}]) {
      const r = await raw(d, 'POST', `/exec/${await create(true)}/start`, start);
      assert.equal(r.body[0], 1, `a stdout frame for ${JSON.stringify(start)}`);
      assert.match(r.body.toString(), /\/dev\/pts\/\d+\r\n/, 'the process has a terminal');
    }
    const rawTty = await raw(d, 'POST', `/exec/${await create(true)}/start`, { Tty: true });
    assert.match(rawTty.body.toString(), /^\/dev\/pts\/\d+\r\nerr\r\n$/);
    // created without: no terminal whatever the start says
    const noTty = await raw(d, 'POST', `/exec/${await create(false)}/start`, { Tty: true });
    assert.match(noTty.body.toString(), /not a tty/);
    // dockerd: `docker exec CTR /nonexist` -> 126 ("OCI runtime exec failed: ... no such file or
    // directory"), and the exec's ExitCode 126; `docker run IMAGE /nonexist` -> 127
    const ex = await d.docker(['exec', 'ex', '/nonexist'], { allowFail: true });
    assert.equal(ex.code, 126, ex.stderr);
    assert.match(ex.stdout + ex.stderr, /OCI runtime exec failed/); // dockerd frames it as stdout
    const id = (await d.api('POST', '/containers/ex/exec', { Cmd: ['/nonexist'] })).body as { Id: string };
    assert.equal((await raw(d, 'POST', `/exec/${id.Id}/start`, { Detach: true })).status, 400);
    assert.equal(((await d.api('GET', `/exec/${id.Id}/json`)).body as { ExitCode: number }).ExitCode, 126);
    // dockerd 20.10: a second start 409 "Error: Exec command <id> has already run"; a finished
    // exec's resize 404 "no such exec"; an exec in a paused container names it as asked
    const again = await d.api('POST', `/exec/${id.Id}/start`, { Detach: true });
    assert.equal(again.status, 409);
    assert.deepEqual(again.body, { message: `Error: Exec command ${id.Id} has already run` });
    const rs = await d.api('POST', `/exec/${id.Id}/resize?h=10&w=10`);
    assert.equal(rs.status, 404);
    assert.deepEqual(rs.body, { message: 'no such exec' });
    await d.docker(['pause', 'ex']);
    const paused = await d.api('POST', '/containers/ex/exec', { Cmd: ['true'] });
    assert.equal(paused.status, 409);
    assert.deepEqual(paused.body, { message: 'Container ex is paused, unpause the container before exec' });
    await d.docker(['unpause', 'ex']);
    const run = await d.docker(['run', '--rm', '--network', 'none', 'busybox', '/nonexist'], { allowFail: true });
    assert.equal(run.code, 127, run.stderr);
    await d.docker(['rm', '-f', 'ex']);
  });

  test('events: top, resize, archive-path, extract-to-dir, rename, commit (pause, tag, commit, unpause); labels in attributes', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    await d.docker(['run', '-d', '--name', 'ev', '-l', 'foo=bar', '--network', 'none', 'busybox', 'sleep', '300']);
    await d.docker(['top', 'ev']);
    assert.equal((await d.api('POST', '/containers/ev/resize?h=10&w=20')).status, 200);
    await d.docker(['commit', 'ev', 'evimg:1']);
    // docker cp out (HEAD then GET: one archive-path), in (extract-to-dir), then a rename
    const tmp = join(d.dir, 'cp-hostname');
    await d.docker(['cp', 'ev:/etc/hostname', tmp]);
    await d.docker(['cp', tmp, 'ev:/tmp/']);
    await d.docker(['rename', 'ev', 'ev2']);
    await d.docker(['kill', 'ev2']);
    const id = (await inspect('ev2')).Id;
    const evs = (await events(t0, { container: [id] })).filter((e) => e.Type === 'container');
    const attrs = (action: string) => evs.find((e) => e.Action === action)?.Actor.Attributes;
    // dockerd 20.10: {"foo":"bar","image":"busybox","name":"ev"} for top, and resize adds height/width
    assert.deepEqual(attrs('top'), { foo: 'bar', image: 'busybox', name: 'ev' });
    assert.deepEqual(attrs('resize'), { foo: 'bar', height: '10', image: 'busybox', name: 'ev', width: '20' });
    assert.deepEqual(attrs('create'), { foo: 'bar', image: 'busybox', name: 'ev' });
    assert.deepEqual(attrs('archive-path'), { foo: 'bar', image: 'busybox', name: 'ev' });
    assert.deepEqual(attrs('extract-to-dir'), { foo: 'bar', image: 'busybox', name: 'ev' });
    assert.equal(evs.filter((e) => e.Action === 'archive-path').length, 1, 'none for the HEAD');
    // dockerd: {"foo":"bar","image":"busybox","name":"ev2","oldName":"/ev"}
    assert.deepEqual(attrs('rename'), { foo: 'bar', image: 'busybox', name: 'ev2', oldName: '/ev' });
    assert.deepEqual(attrs('kill'), { foo: 'bar', image: 'busybox', name: 'ev2', signal: '9' });
    assert.equal(attrs('die')?.['foo'], 'bar');
    // dockerd: pause, (image) tag, commit {comment, foo, image, imageID, imageRef, name}, unpause
    const all = await events(t0);
    const order = all
      .filter((e) => e.Actor.ID === id || e.Type === 'image') // not an earlier test's pause
      .filter((e) => ['pause', 'tag', 'commit', 'unpause'].includes(e.Action))
      .map((e) => e.Action);
    assert.deepEqual(order, ['pause', 'tag', 'commit', 'unpause']);
    const commit = attrs('commit')!;
    assert.equal(commit['image'], 'busybox');
    assert.equal(commit['foo'], 'bar');
    assert.match(commit['imageID'] ?? '', /^sha256:/);
    await d.docker(['rm', '-f', 'ev2']);
    await d.docker(['rmi', 'evimg:1']);
  });

  test('events of stop and rm -f: the signals as kill events, the unpause of a paused container', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    await d.docker(['run', '-d', '--name', 'sq', '--network', 'none', 'busybox', 'sleep', '100']);
    const id = (await inspect('sq')).Id;
    await d.docker(['pause', 'sq']);
    await d.docker(['stop', '-t', '1', 'sq']);
    await d.docker(['start', 'sq']);
    await d.docker(['rm', '-f', 'sq']);
    const seq = (await events(t0, { container: [id] })).map((e) =>
      e.Action === 'kill' || e.Action === 'die'
        ? `${e.Action} ${e.Actor.Attributes['signal'] ?? e.Actor.Attributes['exitCode']}`
        : e.Action,
    );
    // dockerd 20.10: create|start|pause|kill 15|unpause|kill 9|die 137|stop|start|kill 9|die 137|destroy
    assert.deepEqual(seq, [
      'create',
      'start',
      'pause',
      'kill 15',
      'unpause',
      'kill 9',
      'die 137',
      'stop',
      'start',
      'kill 9',
      'die 137',
      'destroy',
    ]);
  });

  test('commit?pause=1 of a container that is just exiting commits (the failed pause is ignored, as dockerd)', async () => {
    const { stdout } = await d.docker(['run', '-d', '--name', 'cx', '--network', 'none', 'busybox', 'sleep', '300']);
    const id = stdout.trim();
    const conmon = Number(readFileSync(join(d.dir, 'run', 'runtime', 'c', id, 'conmon.pid'), 'utf8'));
    const pid = (await inspect('cx')).State['Pid'] as number;
    // the process is gone but its exit not yet seen: conmon is stopped, the runtime says "not running"
    process.kill(conmon, 'SIGSTOP');
    try {
      process.kill(pid, 'SIGKILL');
      await eventually(() => /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 5000, 'a zombie');
      const r = await d.api('POST', '/commit?container=cx&repo=cx-img&pause=1');
      assert.equal(r.status, 201, r.text); // berth answered 500 "cannot pause container ...: is not running"
      assert.match((r.body as { Id: string }).Id, /^sha256:/);
    } finally {
      process.kill(conmon, 'SIGCONT');
    }
    await eventually(async () => (await inspect('cx')).State['Status'] === 'exited', 10_000, 'the exit');
    assert.equal((await inspect('cx')).State['ExitCode'], 137);
    await d.docker(['rm', 'cx']);
    await d.docker(['rmi', 'cx-img']);
  });

  test('State.OOMKilled: true when the OOM killer ended the init or a child, with an oom event', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    const mem = ['-m', '8m', '--memory-swap', '8m', '--network', 'none', 'busybox'];
    // dockerd 20.10: exit 137, {"Status":"exited",...,"OOMKilled":true,...}
    const a = await d.docker(
      ['run', '--name', 'oom1', ...mem, 'sh', '-c', 'x=$(head -c 60000000 /dev/zero | tr "\\0" a)'],
      {
        allowFail: true,
      },
    );
    assert.equal(a.code, 137);
    let s = (await inspect('oom1')).State;
    assert.equal(s['OOMKilled'], true);
    // conmon writes an `oom` file into its working directory: the container's run dir, never berthd's
    assert.equal(existsSync(join(d.dir, 'oom')), false, 'an oom file in the directory berthd was started in');
    assert.equal(s['ExitCode'], 137);
    // a child killed, the init exits 0: dockerd still says OOMKilled true. The child makes itself
    // the OOM killer's first choice (raising one's own oom_score_adj needs no privilege); without
    // that the kernel may pick the init instead on a loaded machine
    const script =
      'sh -c "echo 1000 > /proc/self/oom_score_adj; x=\\$(head -c 60000000 /dev/zero | tr \\"\\\\0\\" a)"; exit 0';
    await d.docker(['run', '--name', 'oom2', ...mem, 'sh', '-c', script]);
    s = (await inspect('oom2')).State;
    assert.equal(s['OOMKilled'], true);
    assert.equal(s['ExitCode'], 0);
    await d.docker(['run', '--name', 'oom3', '--network', 'none', 'busybox', 'true']);
    assert.equal((await inspect('oom3')).State['OOMKilled'], false);
    const ooms = (await events(t0)).filter((e) => e.Action === 'oom').map((e) => e.Actor.Attributes['name']);
    assert.deepEqual(ooms, ['oom1', 'oom2']);
    await d.docker(['rm', 'oom1', 'oom2', 'oom3']);
  });

  test('stats: networks per interface, dockerd shapes for one-shot, stream=0 and a stopped container', async () => {
    await d.docker(['network', 'create', '--subnet', '10.231.7.0/24', 'st-net']);
    await d.docker([
      'run',
      '-d',
      '--name',
      'st',
      '--network',
      'st-net',
      '--pids-limit',
      '50',
      'busybox',
      'sleep',
      '300',
    ]);
    await d.docker(['run', '-d', '--name', 'st-none', '--network', 'none', 'busybox', 'sleep', '300']);
    await d.docker(['run', '-d', '--name', 'st-host', '--network', 'host', 'busybox', 'sleep', '300']);
    await d.docker(['run', '-d', '--name', 'st-ct', '--network', 'container:st', 'busybox', 'sleep', '300']);
    const one = json((await raw(d, 'GET', '/containers/st/stats?stream=0&one-shot=1')).body);
    // dockerd: "networks":{"eth0":{"rx_bytes":652,"rx_packets":6,"rx_errors":0,"rx_dropped":0,"tx_bytes":0,...}}
    const nets = one['networks'] as Record<string, Record<string, number>>;
    assert.deepEqual(Object.keys(nets), ['eth0']);
    assert.deepEqual(Object.keys(nets['eth0']!), [
      'rx_bytes',
      'rx_packets',
      'rx_errors',
      'rx_dropped',
      'tx_bytes',
      'tx_packets',
      'tx_errors',
      'tx_dropped',
    ]);
    // the key order of dockerd's document
    assert.deepEqual(Object.keys(one), [
      'read',
      'preread',
      'pids_stats',
      'blkio_stats',
      'num_procs',
      'storage_stats',
      'cpu_stats',
      'precpu_stats',
      'memory_stats',
      'name',
      'id',
      'networks',
    ]);
    // one-shot: no previous sample; dockerd's precpu_stats leaves the empty fields out
    assert.equal(one['preread'], '0001-01-01T00:00:00Z');
    assert.deepEqual(one['precpu_stats'], {
      cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
      throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    });
    assert.deepEqual(one['pids_stats'], { current: 1, limit: 50 }); // dockerd: {"current":1,"limit":50}
    const blkio = one['blkio_stats'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(blkio), [
      'io_service_bytes_recursive',
      'io_serviced_recursive',
      'io_queue_recursive',
      'io_service_time_recursive',
      'io_wait_time_recursive',
      'io_merged_recursive',
      'io_time_recursive',
      'sectors_recursive',
    ]);
    for (const e of (blkio['io_service_bytes_recursive'] as Array<{ major: number; op: string }> | null) ?? []) {
      assert.ok(e.major > 0, 'a real device, not 0:0');
      assert.ok(cgroupV2 ? ['read', 'write'].includes(e.op) : /^[A-Z]/.test(e.op), e.op);
    }
    const memory = one['memory_stats'] as Record<string, unknown>;
    if (!cgroupV2) assert.equal(typeof memory['max_usage'], 'number'); // dockerd on v1: "max_usage":4210688
    // stream=0: two samples, precpu from the first
    const two = json((await raw(d, 'GET', '/containers/st/stats?stream=0')).body);
    assert.notEqual(two['preread'], '0001-01-01T00:00:00Z');
    assert.equal(typeof (two['precpu_stats'] as Record<string, unknown>)['system_cpu_usage'], 'number');
    // none and host have no interface of their own: dockerd leaves `networks` out; container: shares st's
    for (const n of ['st-none', 'st-host'])
      assert.equal(
        'networks' in json((await raw(d, 'GET', `/containers/${n}/stats?stream=0&one-shot=1`)).body),
        false,
        n,
      );
    const ct = json((await raw(d, 'GET', '/containers/st-ct/stats?stream=0&one-shot=1')).body);
    assert.deepEqual(Object.keys(ct['networks'] as object), ['eth0']);
    assert.deepEqual(json((await raw(d, 'GET', '/containers/st-none/stats?stream=0&one-shot=1')).body)['pids_stats'], {
      current: 1,
    });
    // a container that does not run: dockerd's zero document
    await d.docker(['create', '--name', 'st-off', 'busybox', 'true']);
    const off = json((await raw(d, 'GET', '/containers/st-off/stats?stream=0')).body);
    assert.equal(off['read'], '0001-01-01T00:00:00Z');
    assert.deepEqual(off['pids_stats'], {});
    assert.deepEqual(off['memory_stats'], {});
    assert.equal(off['networks'], undefined);
    assert.equal((off['blkio_stats'] as Record<string, unknown>)['io_service_bytes_recursive'], null);
    // streamed: dockerd 20.10 sends a stopped container's zero document every second, real ones
    // once it runs (berth ended the stream at the first); a removal ends it
    const streamed = await lines(d, '/containers/st-off/stats', 3, async () => {
      await new Promise((res) => setTimeout(res, 1200));
      await d.docker(['start', 'st-off']); // `true`: it runs and exits again at once
    });
    assert.equal(streamed.ended, false);
    assert.equal(JSON.parse(streamed.lines[0]!).read, '0001-01-01T00:00:00Z');
    await d.docker(['run', '-d', '--name', 'st-gone', '--network', 'none', 'busybox', 'sleep', '300']);
    const gone = await lines(d, '/containers/st-gone/stats', 100, async () => {
      await new Promise((res) => setTimeout(res, 1500));
      await d.docker(['rm', '-f', 'st-gone']);
    });
    assert.equal(gone.ended, true, 'the removal ends the stream');
    assert.ok(gone.lines.length >= 1 && gone.lines.length < 10, String(gone.lines.length));
    assert.notEqual(JSON.parse(gone.lines[0]!).read, '0001-01-01T00:00:00Z');
    await d.docker(['rm', '-f', 'st', 'st-none', 'st-host', 'st-ct', 'st-off']);
    await d.docker(['network', 'rm', 'st-net']);
  });
});
