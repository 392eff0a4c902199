/**
 * Issue #16 (Fidelity), the classic `POST /build`: the stream as dockerd 20.10's legacy builder
 * writes it (messages, their order, `stream`/`aux`/`errorDetail`), the HTTP errors it answers
 * before the first step, and the query parameters clients send (squash, extrahosts, cachefrom,
 * networkmode=container:<id>, rm/forcerm, q, JSON null).
 *
 * What dockerd 20.10.24 answered (a private dockerd, no bridge, `POST /v1.41/build`) is written
 * beside each case; the test runs against berthd only. Ids are replaced by H12/H64 to compare.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';
import { startBerthRegistry } from './registry-harness.js';

type Msg = Record<string, unknown>;

describe('POST /build (classic builder) as dockerd answers it', () => {
  let d: Daemon;
  let work: string;
  let n = 0;
  before(async () => {
    d = await startDaemon();
    work = mkdtempSync(join(d.dir, 'ctx-'));
  });
  after(async () => {
    await d?.stop();
  });

  /** A context tar of these files. */
  const context = (files: Record<string, string>): Buffer => {
    const dir = join(work, `c${++n}`);
    mkdirSync(dir, { recursive: true });
    for (const [p, c] of Object.entries(files)) writeFileSync(join(dir, p), c);
    return execFileSync('tar', ['-C', dir, '-cf', '-', '.']);
  };

  const build = (body: Buffer, query = ''): Promise<{ status: number; text: string; msgs: Msg[] }> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: d.sock,
          method: 'POST',
          path: `/v1.41/build${query ? `?${query}` : ''}`,
          headers: { 'Content-Type': 'application/x-tar' },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => {
            const msgs =
              res.statusCode === 200
                ? text
                    .split('\r\n')
                    .filter(Boolean)
                    .map((l) => JSON.parse(l) as Msg)
                : [];
            resolve({ status: res.statusCode ?? 0, text, msgs });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  /** The stream with ids replaced, one string per message (what the comparisons below use). */
  const shape = (msgs: Msg[]): string[] =>
    msgs.map((m) =>
      JSON.stringify(m)
        .replace(/[0-9a-f]{64}/g, 'H64')
        .replace(/[0-9a-f]{12}/g, 'H12'),
    );
  const s = (text: string) => JSON.stringify({ stream: text });
  const AUX = JSON.stringify({ aux: { ID: 'sha256:H64' } });

  test('a small build: the whole stream, in dockerd order (aux before "Successfully built")', async () => {
    const body = context({
      Dockerfile: 'FROM busybox\nRUN echo err >&2 && sleep 0.3 && echo out\nWORKDIR /a b\nENV X=1\n',
    });
    const one = await build(body, 't=fidelity%3A1');
    assert.equal(one.status, 200, one.text);
    // dockerd 20.10 (same steps; its RUN printed stderr first too):
    // {"stream":"Step 1/4 : FROM busybox"} {"stream":"\n"} {"stream":" ---> a3d1bf5be490\n"}
    // {"stream":"Step 2/4 : RUN ..."} {"stream":"\n"} {"stream":" ---> Running in 85c071111e9b\n"}
    // {"stream":"\u001b[91merr\n\u001b[0m"} {"stream":"out\n"}
    // {"stream":"Removing intermediate container 85c071111e9b\n"} {"stream":" ---> af608f3b3a68\n"}
    // {"stream":"Step 3/4 : WORKDIR /a b"} {"stream":"\n"} {"stream":" ---> Running in 8c06b8ec5725\n"}
    // {"stream":"Removing intermediate container 8c06b8ec5725\n"} {"stream":" ---> 5678898e383d\n"}
    // ... ENV the same ... {"aux":{"ID":"sha256:57b2...f10"}} {"stream":"Successfully built 57b2acea53d2\n"}
    // {"stream":"Successfully tagged fb:1\n"}
    assert.deepEqual(shape(one.msgs), [
      s('Step 1/4 : FROM busybox'),
      s('\n'),
      s(' ---> H12\n'),
      s('Step 2/4 : RUN echo err >&2 && sleep 0.3 && echo out'),
      s('\n'),
      s(' ---> Running in H12\n'),
      s('\x1b[91merr\n\x1b[0m'),
      s('out\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> H12\n'),
      s('Step 3/4 : WORKDIR /a b'),
      s('\n'),
      s(' ---> Running in H12\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> H12\n'),
      s('Step 4/4 : ENV X=1'),
      s('\n'),
      s(' ---> Running in H12\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> H12\n'),
      AUX,
      s('Successfully built H12\n'),
      s('Successfully tagged fidelity:1\n'),
    ]);
    const texts = one.msgs.map((m) => String(m['stream'] ?? ''));
    const running = texts.filter((t) => t.startsWith(' ---> Running in ')).map((t) => t.slice(17, 29));
    const removed = texts.filter((t) => t.startsWith('Removing')).map((t) => t.slice(-13, -1));
    assert.deepEqual(removed, running, 'each intermediate container said removed is the one said running');
    const id = (one.msgs.find((m) => m['aux']) as { aux: { ID: string } }).aux.ID;
    assert.ok(texts.includes(`Successfully built ${id.slice(7, 19)}\n`));
    const img = JSON.parse((await d.docker(['image', 'inspect', 'fidelity:1'])).stdout)[0];
    assert.equal(img.Id, id);
    assert.equal(img.Config.WorkingDir, '/a b', 'WORKDIR with a space is one path (dockerd: "/a b")');

    // dockerd, the same build again: every step " ---> Using cache" then " ---> <id>", two messages
    const two = await build(body, 't=fidelity%3A1');
    assert.deepEqual(shape(two.msgs), [
      s('Step 1/4 : FROM busybox'),
      s('\n'),
      s(' ---> H12\n'),
      ...['RUN echo err >&2 && sleep 0.3 && echo out', 'WORKDIR /a b', 'ENV X=1'].flatMap((t, i) => [
        s(`Step ${i + 2}/4 : ${t}`),
        s('\n'),
        s(' ---> Using cache\n'),
        s(' ---> H12\n'),
      ]),
      AUX,
      s('Successfully built H12\n'),
      s('Successfully tagged fidelity:1\n'),
    ]);

    // dockerd with q=1: the id as the only message, no aux
    const quiet = await build(body, 'q=1');
    assert.deepEqual(quiet.msgs, [{ stream: `${id}\n` }]);
    // dockerd: the Go SDK's buildargs=null&labels=null&cachefrom=null build as if unset
    const nulls = await build(body, 'q=1&buildargs=null&labels=null&cachefrom=null');
    assert.deepEqual(nulls.msgs, [{ stream: `${id}\n` }]);
  });

  test('a failing RUN: errorDetail with the exit code and dockerd words; rm/forcerm', async () => {
    const body = context({ Dockerfile: 'FROM busybox\nRUN exit 3\n' });
    const err = JSON.stringify({
      errorDetail: { code: 3, message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3" },
      error: "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
    });
    const head = [s('Step 1/2 : FROM busybox'), s('\n'), s(' ---> H12\n'), s('Step 2/2 : RUN exit 3'), s('\n')];
    // dockerd (rm=1 by default, and rm=0): no "Removing" line: the failed container is kept
    for (const q of ['', 'rm=0']) {
      const r = await build(body, q);
      assert.equal(r.status, 200);
      assert.deepEqual(shape(r.msgs), [...head, s(' ---> Running in H12\n'), err], q);
    }
    // dockerd with forcerm=1: "Removing intermediate container <id>" before the error
    const f = await build(body, 'forcerm=1');
    assert.deepEqual(shape(f.msgs), [
      ...head,
      s(' ---> Running in H12\n'),
      s('Removing intermediate container H12\n'),
      err,
    ]);
    // dockerd with q=1: nothing while it runs; when it fails, the held stream, then the error
    const quiet = await build(body, 'q=1');
    assert.deepEqual(shape(quiet.msgs), [...head, s(' ---> Running in H12\n'), err]);
    // rm=0 on success: no "Removing" line either
    const ok = await build(context({ Dockerfile: 'FROM busybox\nENV A=1\n' }), 'rm=0&nocache=1');
    assert.deepEqual(
      shape(ok.msgs).filter((m) => m.includes('Removing')),
      [],
    );
    assert.ok(shape(ok.msgs).includes(s(' ---> Running in H12\n')));
  });

  test('what fails before the first step is an HTTP error with dockerd words; nothing is built', async () => {
    const before = (await d.docker(['images', '-aq', '--no-trunc'])).stdout;
    const ok = context({ Dockerfile: 'FROM busybox\nRUN true\n' });
    const cases: Array<[Buffer, string, number, string]> = [
      // dockerd: 400 {"message":"dockerfile parse error line 2: unknown instruction: RUNN"}
      [
        context({ Dockerfile: 'FROM busybox\nRUNN x\n' }),
        '',
        400,
        'dockerfile parse error line 2: unknown instruction: RUNN',
      ],
      // dockerd: 400 {"message":"dockerfile parse error line 5: WORKDIR requires exactly one argument"}
      [
        context({ Dockerfile: 'FROM busybox\nWORKDIR /a b\n\n\nWORKDIR\n' }),
        '',
        400,
        'dockerfile parse error line 5: WORKDIR requires exactly one argument',
      ],
      // dockerd: 400 {"message":"no build stage in current context"}
      [context({ Dockerfile: 'RUN true\n' }), '', 400, 'no build stage in current context'],
      // dockerd: 400 {"message":"failed to parse Dockerfile: file with no instructions"}
      [context({ Dockerfile: '# only a comment\n' }), '', 400, 'failed to parse Dockerfile: file with no instructions'],
      // dockerd: 400 {"message":"failed to reach build target nope in Dockerfile"}
      [ok, 'target=nope', 400, 'failed to reach build target nope in Dockerfile'],
      // dockerd: 500 {"message":"forbidden path outside the build context: ../x ()"} (berth: 400, no "()")
      [ok, 'dockerfile=..%2Fx', 400, 'forbidden path outside the build context: ../x'],
      // dockerd 20.10 without experimental: 400 {"message":"squash is only supported with experimental mode"}
      [ok, 'squash=1', 400, 'squash is only supported with experimental mode'],
      // dockerd reports this one at the first RUN (in the stream); berth refuses it up front, same words
      [ok, 'extrahosts=a%3A1.2.3.4%2Cb%3A5.6.7.8', 400, 'invalid IP address in add-host: "1.2.3.4,b:5.6.7.8"'],
    ];
    for (const [body, q, status, message] of cases) {
      const r = await build(body, q);
      assert.equal(r.status, status, `${q}: ${r.text}`);
      assert.equal(JSON.parse(r.text).message, message, q);
    }
    // dockerd on Linux: 400 {"message":"Unsupported isolation: \"hyperv\""}
    const iso = await build(ok, 'isolation=hyperv');
    assert.equal(iso.status, 400);
    assert.equal(JSON.parse(iso.text).message, 'Unsupported isolation: "hyperv"');
    // dockerd: 400 "error reading build args: invalid character 'o' in literal null (expecting 'u')" (Go's
    // JSON words after the prefix; berth's are Node's)
    for (const [q, prefix] of [
      ['buildargs=notjson', 'error reading build args: '],
      ['labels=notjson', 'error reading labels: '],
      ['buildargs=%5B1%5D', 'error reading build args: '],
    ] as const) {
      const r = await build(ok, q);
      assert.equal(r.status, 400, q);
      assert.ok(String(JSON.parse(r.text).message).startsWith(prefix), r.text);
    }
    assert.equal((await d.docker(['images', '-aq', '--no-trunc'])).stdout, before, 'no image was made');
  });

  test('stages: the stream stage by stage as dockerd, aux per stage, labels as LABEL steps', async () => {
    const body = context({
      Dockerfile:
        'FROM busybox AS slow\nRUN sleep 1 && echo slow\nFROM busybox AS fast\nRUN echo fast\n' +
        'FROM busybox\nCOPY --from=slow /bin/true /s\nCOPY --from=fast /bin/true /f\n',
    });
    const labels = encodeURIComponent(JSON.stringify({ k: 'v w', a: "b'c" }));
    const r = await build(body, `nocache=1&t=fidelity-stages&labels=${labels}`);
    // dockerd 20.10: stages one after the other, `{"aux":{"ID":...}}` after each; the labels are
    // one `LABEL k=v` step each, sorted by key, counted in the total:
    // {"stream":"Step 3/4 : LABEL a=b'c"} ... {"stream":"Step 4/4 : LABEL k=v w"}
    const steps = (n: number, t: string, run: string[]) => [s(`Step ${n}/9 : ${t}`), s('\n'), ...run];
    const ran = (out: string) => [s(' ---> Running in H12\n'), s(out), s('Removing intermediate container H12\n')];
    const meta = [s(' ---> Running in H12\n'), s('Removing intermediate container H12\n')];
    assert.deepEqual(shape(r.msgs), [
      ...steps(1, 'FROM busybox AS slow', [s(' ---> H12\n')]),
      ...steps(2, 'RUN sleep 1 && echo slow', [...ran('slow\n'), s(' ---> H12\n')]),
      AUX,
      ...steps(3, 'FROM busybox AS fast', [s(' ---> H12\n')]),
      ...steps(4, 'RUN echo fast', [...ran('fast\n'), s(' ---> H12\n')]),
      AUX,
      ...steps(5, 'FROM busybox', [s(' ---> H12\n')]),
      ...steps(6, 'COPY --from=slow /bin/true /s', [s(' ---> H12\n')]),
      ...steps(7, 'COPY --from=fast /bin/true /f', [s(' ---> H12\n')]),
      ...steps(8, "LABEL a=b'c", [...meta, s(' ---> H12\n')]),
      ...steps(9, 'LABEL k=v w', [...meta, s(' ---> H12\n')]),
      AUX,
      s('Successfully built H12\n'),
      s('Successfully tagged fidelity-stages:latest\n'),
    ]);
    const img = JSON.parse((await d.docker(['image', 'inspect', 'fidelity-stages'])).stdout)[0];
    assert.deepEqual(img.Config.Labels, { a: "b'c", k: 'v w' });
    const history = (await d.docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'fidelity-stages'])).stdout;
    // dockerd: "/bin/sh -c #(nop)  LABEL k=v w" then "/bin/sh -c #(nop)  LABEL a=b'c" (newest first)
    assert.match(history, /^\/bin\/sh -c #\(nop\)  LABEL k=v w\n\/bin\/sh -c #\(nop\)  LABEL a=b'c\n/);
  });

  test('.dockerignore: the daemon only drops .dockerignore and the Dockerfile (the client filtered the rest)', async () => {
    const r = await build(
      context({
        '.dockerignore': '*.log\n!keep.log\nDockerfile\n.dockerignore\n',
        'a.log': '',
        'keep.log': '',
        'x.txt': '',
        Dockerfile: 'FROM busybox\nCOPY . /x\nRUN find /x | sort\n',
      }),
      'nocache=1',
    );
    // dockerd 20.10, the same tar sent as is: {"stream":"/x\n/x/a.log\n/x/keep.log\n/x/x.txt\n"}
    // (moby's removeDockerfile: only .dockerignore and the Dockerfile, when .dockerignore names them)
    assert.ok(
      r.msgs.some((m) => m['stream'] === '/x\n/x/a.log\n/x/keep.log\n/x/x.txt\n'),
      r.text,
    );
  });

  test('a stage fails while a later one ran: the stream ends as dockerd, with the failing stage', async () => {
    const body = context({
      Dockerfile:
        'FROM busybox AS a\nRUN sleep 1; exit 4\nFROM busybox AS b\nRUN echo later\n' +
        'FROM busybox\nCOPY --from=a /bin/true /a\nCOPY --from=b /bin/true /b\n',
    });
    const r = await build(body, 'nocache=1');
    // dockerd (stages one by one) never starts stage b; berth ran it at once but shows nothing of it
    const msg = "The command '/bin/sh -c sleep 1; exit 4' returned a non-zero code: 4";
    assert.deepEqual(shape(r.msgs), [
      s('Step 1/7 : FROM busybox AS a'),
      s('\n'),
      s(' ---> H12\n'),
      s('Step 2/7 : RUN sleep 1; exit 4'),
      s('\n'),
      s(' ---> Running in H12\n'),
      JSON.stringify({ errorDetail: { code: 4, message: msg }, error: msg }),
    ]);
    // the docker CLI (legacy builder) exits with errorDetail's code, as with dockerd
    const cli = await d.docker(['build', '-q', join(work, `c${n}`)], {
      allowFail: true,
      env: { DOCKER_BUILDKIT: '0' },
    });
    assert.equal(cli.code, 4, cli.stderr);
    assert.match(cli.stderr, /The command '\/bin\/sh -c sleep 1; exit 4' returned a non-zero code: 4/);
  });

  test('ARGs before the first FROM are steps of their own, as dockerd counts them', async () => {
    const body = context({ Dockerfile: 'ARG BASE=busybox\nARG V=1\nFROM ${BASE} AS one\nARG V\nRUN echo v=$V\n' });
    const r = await build(body, 'nocache=1');
    // dockerd 20.10: {"stream":"Step 1/5 : ARG BASE=busybox"} {"stream":"\n"} {"stream":"Step 2/5 : ARG V=1"}
    // {"stream":"\n"} {"stream":"Step 3/5 : FROM ${BASE} AS one"} {"stream":"\n"} {"stream":" ---> a3d1bf5be490\n"} ...
    assert.deepEqual(shape(r.msgs).slice(0, 7), [
      s('Step 1/5 : ARG BASE=busybox'),
      s('\n'),
      s('Step 2/5 : ARG V=1'),
      s('\n'),
      s('Step 3/5 : FROM ${BASE} AS one'),
      s('\n'),
      s(' ---> H12\n'),
    ]);
    assert.ok(
      r.msgs.some((m) => m['stream'] === 'v=1\n'),
      r.text,
    );
  });

  test('ONBUILD triggers and FROM scratch: dockerd lines', async () => {
    const base = await build(
      context({ Dockerfile: 'FROM busybox\nONBUILD RUN echo triggered\nONBUILD ENV T=1\n' }),
      't=fidelity-onbuild',
    );
    assert.equal(base.status, 200);
    const r = await build(context({ Dockerfile: 'FROM fidelity-onbuild\nENV B=1\n', f: 'x' }), 'nocache=1');
    // dockerd 20.10: {"stream":"# Executing 2 build trigger"} {"stream":"s"} {"stream":"\n"}, each trigger's
    // Running in / output / Removing, no " ---> <id>" per trigger, then the id after all of them
    assert.deepEqual(shape(r.msgs), [
      s('Step 1/2 : FROM fidelity-onbuild'),
      s('\n'),
      s('# Executing 2 build trigger'),
      s('s'),
      s('\n'),
      s(' ---> Running in H12\n'),
      s('triggered\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> Running in H12\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> H12\n'),
      s('Step 2/2 : ENV B=1'),
      s('\n'),
      s(' ---> Running in H12\n'),
      s('Removing intermediate container H12\n'),
      s(' ---> H12\n'),
      AUX,
      s('Successfully built H12\n'),
    ]);
    // dockerd: FROM scratch is followed by " ---> " (no id)
    const sc = await build(context({ Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'x' }), 'nocache=1');
    assert.deepEqual(shape(sc.msgs).slice(0, 4), [
      s('Step 1/2 : FROM scratch'),
      s('\n'),
      s(' ---> \n'),
      s('Step 2/2 : COPY f /f'),
    ]);
  });

  test("a base image's pull: its progress messages in the stream, as /images/create streams them", async () => {
    const reg = await startBerthRegistry();
    try {
      const ref = `${reg.addr}/fidelity/base:1`;
      await d.docker(['tag', 'busybox', ref]);
      await d.berth(['push', ref]);
      await d.docker(['rmi', ref]);
      const r = await build(context({ Dockerfile: `FROM ${ref}\nENV A=1\n` }), 'nocache=1');
      // dockerd 20.10: {"stream":"Step 1/2 : FROM 127.0.0.1:5987/fb/base:1"} {"stream":"\n"}
      // {"status":"Pulling from fb/base","id":"1"} ({"status":"Pulling fs layer","progressDetail":{},"id":...} ...)
      // {"status":"Digest: sha256:821f..."} {"status":"Status: Downloaded newer image for 127.0.0.1:5987/fb/base:1"}
      // {"stream":" ---> a3d1bf5be490\n"}
      const i = r.msgs.findIndex((m) => m['status'] === 'Pulling from fidelity/base');
      assert.ok(i > 0, r.text);
      assert.deepEqual(r.msgs[i], { status: 'Pulling from fidelity/base', id: '1' });
      assert.deepEqual(shape(r.msgs.slice(0, 2)), [s(`Step 1/2 : FROM ${ref}`), s('\n')]);
      assert.ok(
        r.msgs.some((m) => String(m['status']).startsWith('Digest: sha256:')),
        r.text,
      );
      assert.ok(!r.msgs.some((m) => String(m['stream'] ?? '').includes('Pulling')), 'no pull line as a stream');
      const after = r.msgs.findIndex((m) => String(m['stream'] ?? '').startsWith(' ---> '));
      assert.ok(after > i, 'the id of the pulled image follows its progress');
      assert.ok(
        r.msgs.some((m) => m['aux']),
        r.text,
      );
    } finally {
      await reg.stop();
    }
  });

  test('memory, shmsize and ulimits apply to RUN steps', async () => {
    const body = context({
      Dockerfile:
        'FROM busybox\nRUN echo "n=$(ulimit -n)"; df -k /dev/shm | tail -1; ' +
        'echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"\n',
    });
    const ulimits = encodeURIComponent(JSON.stringify([{ Name: 'nofile', Soft: 123, Hard: 456 }]));
    const r = await build(body, `nocache=1&memory=67108864&shmsize=33554432&ulimits=${ulimits}`);
    // dockerd 20.10 (cgroup v1 host): "123", "shm  32768  0  32768  0% /dev/shm", "67108864"
    const out = r.msgs.map((m) => String(m['stream'] ?? '')).join('');
    assert.match(out, /n=123\n/, r.text);
    assert.match(out, /shm\s+32768\s/, r.text);
    assert.match(out, /mem=67108864\n/, r.text);
    // dockerd: ulimits=null is none; a bad one is 400 "error reading ulimit settings: ..."
    assert.equal((await build(body, 'q=1&ulimits=null')).status, 200);
    const bad = await build(body, 'ulimits=notjson');
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).message, /^error reading ulimit settings: /);
  });

  test('extrahosts reach /etc/hosts of RUN steps', async () => {
    const r = await build(
      context({ Dockerfile: 'FROM busybox\nRUN cat /etc/hosts\n' }),
      'nocache=1&extrahosts=a%3A1.2.3.4&extrahosts=c%3A9.9.9.9',
    );
    // dockerd: ...\n1.2.3.4\ta\n9.9.9.9\tc\n (one "host:ip" per extrahosts parameter)
    const out = r.msgs.map((m) => String(m['stream'] ?? '')).join('');
    assert.match(out, /\n1\.2\.3\.4\ta\n9\.9\.9\.9\tc\n/);
  });

  test('cachefrom restricts the cache to those images (dockerd legacy builder)', async () => {
    const body = context({ Dockerfile: 'FROM busybox\nRUN echo cached && echo x > /c\nENV B=2\n' });
    const first = await build(body, 't=fidelity-cache');
    assert.equal(first.status, 200);
    const uses = (msgs: Msg[]) => msgs.filter((m) => m['stream'] === ' ---> Using cache\n').length;
    assert.equal(uses((await build(body, '')).msgs), 2, 'without cachefrom the local cache answers');
    // dockerd: with cachefrom=["busybox"] (not an image of this build's chain) every step runs again
    const other = await build(body, `cachefrom=${encodeURIComponent('["busybox"]')}`);
    assert.equal(uses(other.msgs), 0, shape(other.msgs).join('\n'));
    assert.ok(
      other.msgs.some((m) => m['stream'] === 'cached\n'),
      'the RUN step ran',
    );
    // with the image itself in the list its steps are cache hits
    const own = await build(body, `cachefrom=${encodeURIComponent('["fidelity-cache"]')}`);
    assert.equal(uses(own.msgs), 2, shape(own.msgs).join('\n'));
  });

  test('networkmode=container:<id>: RUN steps join that container network namespace', async () => {
    // a container in its own network namespace (network none)
    await d.docker(['run', '-d', '--name', 'fidelity-net', '--network', 'none', 'busybox', 'sleep', '300']);
    try {
      const ns = (await d.docker(['exec', 'fidelity-net', 'readlink', '/proc/self/ns/net'])).stdout;
      assert.match(ns, /^net:\[\d+\]\n$/);
      const body = context({ Dockerfile: 'FROM busybox\nRUN readlink /proc/self/ns/net\n' });
      const joined = await build(body, 'nocache=1&networkmode=container%3Afidelity-net');
      assert.ok(
        joined.msgs.some((m) => m['stream'] === ns),
        joined.text,
      );
      assert.ok(
        joined.msgs.some((m) => m['aux']),
        joined.text,
      );
      // without it the step runs elsewhere
      const other = await build(body, 'nocache=1');
      assert.ok(
        other.msgs.some((m) => m['aux']),
        other.text,
      );
      assert.ok(!other.msgs.some((m) => m['stream'] === ns), other.text);
      // dockerd: a missing container fails the RUN in the stream: "No such container: nope"
      const missing = await build(body, 'nocache=1&networkmode=container%3Anope');
      assert.equal(missing.status, 200);
      assert.match(String(missing.msgs.at(-1)?.['error']), /No such container: nope/);
    } finally {
      await d.docker(['rm', '-f', 'fidelity-net'], { allowFail: true });
    }
  });
});
