/**
 * Issue #4: Dockerfile builds. A corpus of Dockerfiles, each built by `docker build` (dockerd's
 * legacy builder API, DOCKER_BUILDKIT=0) and by `berth build` against berthd; the images are run
 * and their config checked. Then the cache, multi-stage concurrency and --target, secrets and
 * cache mounts, outputs, and bad input leaving nothing behind.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, mkdtempSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { cli, startDaemon, type Daemon } from './harness.js';
import { startBerthRegistry } from './registry-harness.js';

type Files = Record<string, string>;

function writeContext(root: string, name: string, files: Files): string {
  const dir = join(root, name);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  return dir;
}

describe('docker build and berth build', () => {
  let d: Daemon;
  let docker: ReturnType<typeof cli>;
  let work: string;
  let web: Server;
  let webUrl: string;
  before(async () => {
    d = await startDaemon();
    docker = cli(['docker'], { ...d.env, DOCKER_BUILDKIT: '0' });
    work = mkdtempSync(join(d.dir, 'ctx-'));
    web = createServer((req, res) => {
      if (req.url === '/remote.txt') {
        res.setHeader('Last-Modified', new Date(Date.UTC(2020, 0, 1)).toUTCString());
        res.end('from the web\n');
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  });
  after(async () => {
    web?.close();
    await d?.stop();
  });

  const inspect = async (ref: string) => JSON.parse((await d.docker(['image', 'inspect', ref])).stdout)[0];
  const run = async (ref: string, ...args: string[]) => (await d.docker(['run', '--rm', ref, ...args])).stdout;
  /** Builds with both clients; returns the image ids (docker's first). */
  const buildBoth = async (dir: string, tag: string, extra: string[] = []) => {
    const a = await docker(['build', '-q', '-t', `${tag}-docker`, ...extra, dir]);
    const b = await d.berth(['build', '-q', '-t', `${tag}-berth`, ...extra, dir]);
    return [a.stdout.trim(), b.stdout.trim()];
  };

  test('every instruction: config, history and the running image match the Dockerfile', async () => {
    const dir = writeContext(work, 'all', {
      Dockerfile: `# syntax=docker/dockerfile:1
# a comment before the first instruction
ARG BASE=busybox
FROM \${BASE} AS base
MAINTAINER berth tests
LABEL org.example.title="all instructions" \\
      # a comment inside a continuation
      org.example.version=1
ENV APP_HOME=/srv/app GREETING="hello world"
ENV LEGACY legacy form value
WORKDIR $APP_HOME
ARG WHO
ARG EMPTY
RUN echo "\${GREETING}, \${WHO:-nobody}\${EMPTY:+ignored}" > greeting.txt
COPY files/ ./files/
COPY --chmod=0700 tool.sh /usr/local/bin/tool
COPY --chown=app:app owned.txt /home/app/
ADD archive.tar.gz /opt/
ARG URL
ADD ${'${URL}'}/remote.txt /opt/remote/
EXPOSE 8080 9000-9001/udp
VOLUME ["/data"]
VOLUME /cache
USER app
RUN id -un > /home/app/whoami
USER root
SHELL ["/bin/sh", "-ec"]
RUN test "$(cat /home/app/whoami)" = app
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD test -f /srv/app/greeting.txt
ONBUILD RUN echo triggered > /onbuild.txt
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting.txt"]
`,
      'files/a.txt': 'A\n',
      'files/sub/b.txt': 'B\n',
      'tool.sh': '#!/bin/sh\necho tool ran\n',
      'owned.txt': 'mine\n',
    });
    // a gzip'd tar for ADD's auto-extraction
    mkdirSync(join(work, 'tarsrc/pkg'), { recursive: true });
    writeFileSync(join(work, 'tarsrc/pkg/inside.txt'), 'inside the archive\n');
    execFileSync('tar', ['-czf', join(dir, 'archive.tar.gz'), '-C', join(work, 'tarsrc'), 'pkg']);
    const [a, b] = await buildBoth(dir, 'all', ['--build-arg', 'WHO=tests', '--build-arg', `URL=${webUrl}`]);
    assert.match(a!, /^sha256:[0-9a-f]{64}$/);
    assert.equal(b, a, 'berth build after docker build: every step from the cache, the same image');
    const img = await inspect('all-docker');
    const c = img.Config;
    assert.equal(img.Author, 'berth tests');
    assert.deepEqual(c.Labels, { 'org.example.title': 'all instructions', 'org.example.version': '1' });
    assert.ok(c.Env.includes('APP_HOME=/srv/app'));
    assert.ok(c.Env.includes('GREETING=hello world'));
    assert.ok(c.Env.includes('LEGACY=legacy form value'));
    assert.ok(!c.Env.some((e: string) => e.startsWith('WHO=')), 'ARG values stay out of the image');
    assert.equal(c.WorkingDir, '/srv/app');
    assert.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '9000/udp': {}, '9001/udp': {} });
    assert.deepEqual(c.Volumes, { '/data': {}, '/cache': {} });
    assert.equal(c.User, 'root');
    assert.deepEqual(c.Shell, ['/bin/sh', '-ec']);
    assert.equal(c.StopSignal, 'SIGTERM');
    assert.deepEqual(c.Healthcheck, {
      Test: ['CMD-SHELL', 'test -f /srv/app/greeting.txt'],
      Interval: 5e9,
      Timeout: 2e9,
      StartPeriod: 1e9,
      Retries: 4,
    });
    assert.deepEqual(c.OnBuild, ['RUN echo triggered > /onbuild.txt']);
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
    assert.deepEqual(c.Cmd, ['cat greeting.txt']);
    assert.equal((await run('all-docker')).trim(), 'hello world, tests');
    assert.equal(
      await run('all-docker', 'cat files/a.txt files/sub/b.txt /opt/pkg/inside.txt /opt/remote/remote.txt'),
      'A\nB\ninside the archive\nfrom the web\n',
    );
    assert.equal((await run('all-docker', 'stat -c %a /usr/local/bin/tool && tool')).trim(), '700\ntool ran');
    assert.equal((await run('all-docker', 'stat -c %U:%G /home/app/owned.txt')).trim(), 'app:app');
    assert.equal((await run('all-docker', 'stat -c %a /opt/remote/remote.txt')).trim(), '600');
    // one history entry per instruction after FROM (plus the base image's), empty_layer where no layer
    const hist = JSON.parse((await d.api('GET', '/images/all-docker/history')).text) as Array<{
      CreatedBy: string;
      Size: number;
    }>;
    const own = hist.slice(0, hist.length - 2);
    assert.equal(own.length, 27);
    assert.match(own.at(-1)!.CreatedBy, /#\(nop\) {2}MAINTAINER berth tests/);
    assert.ok(
      own.some((h) => /^\|1 WHO=tests \/bin\/sh -c echo/.test(h.CreatedBy) && h.Size > 0),
      'RUN history names the build args it saw',
    );
    assert.ok(own.some((h) => /#\(nop\) COPY dir:[0-9a-f]{64} in \/srv\/app\/files\/ $/.test(h.CreatedBy)));
    assert.equal(own.filter((h) => h.Size > 0).length, img.RootFS.Layers.length - 1);
  });

  test('parser directives, here-documents, exec form, ONBUILD triggers in a child image', async () => {
    const dir = writeContext(work, 'heredoc', {
      Dockerfile:
        '# escape=`\nFROM all-docker\nRUN <<EOF\necho first > /h1\necho second >> /h1\nEOF\nRUN cat <<-END > /h2 && `\n    echo continued >> /h2\n\tindented $HOME\n\tEND\nCOPY <<EOF /etc/motd\nwelcome to ${APP_HOME}\nEOF\nCOPY <<"EOF" /etc/raw\nnot $EXPANDED\nEOF\nRUN ["/bin/sh", "-c", "echo exec form > /h3"]\nENTRYPOINT []\nCMD ["cat", "/h1", "/h2", "/h3", "/etc/motd", "/etc/raw", "/onbuild.txt"]\n',
    });
    await buildBoth(dir, 'heredoc');
    assert.equal(
      await run('heredoc-berth'),
      'first\nsecond\nindented /root\ncontinued\nexec form\nwelcome to /srv/app\nnot $EXPANDED\ntriggered\n',
    );
    assert.equal((await inspect('heredoc-berth')).Config.OnBuild, null, 'triggers are not inherited by grandchildren');
  });

  test('FROM --platform, predefined platform ARGs, COPY globs and --link, -f, several -t, --label', async () => {
    const dir = writeContext(work, 'more', {
      'docker/Dockerfile.dev': `FROM --platform=linux/amd64 busybox
ARG TARGETARCH
ARG TARGETPLATFORM
RUN echo "$TARGETPLATFORM $TARGETARCH" > /platform
COPY *.txt /texts/
COPY --link src/[ab]?.js /js/
CMD ["sh", "-c", "cat /platform; ls /texts /js"]
`,
      'one.txt': '1',
      'two.txt': '2',
      'three.md': '3',
      'src/a1.js': 'a',
      'src/b2.js': 'b',
      'src/c3.js': 'c',
      'src/a12.js': 'x',
    });
    const ids = await buildBoth(dir, 'more', [
      '-f',
      join(dir, 'docker/Dockerfile.dev'),
      '-t',
      'more-extra:v2',
      '--label',
      'built.by=tests',
    ]);
    assert.equal(ids[0], ids[1]);
    for (const tag of ['more-docker', 'more-berth', 'more-extra:v2'])
      assert.equal((await inspect(tag)).Id, ids[0], `${tag} names the image`);
    assert.equal(await run('more-berth'), 'linux/amd64 amd64\n/js:\na1.js\nb2.js\n\n/texts:\none.txt\ntwo.txt\n');
    assert.equal((await inspect('more-berth')).Config.Labels['built.by'], 'tests');
    // the Dockerfile from stdin, with a context dir (the docker CLI's tar of it ends without tar's end blocks) or without one
    const piped = await docker(['build', '-q', '-f', '-', '-t', 'from-stdin', dir], {
      input: 'FROM busybox\nCOPY one.txt /one\n',
    });
    assert.equal((await inspect('from-stdin')).Id, piped.stdout.trim());
    assert.equal(await run('from-stdin', 'cat', '/one'), '1');
    await docker(['build', '-q', '-t', 'no-context', '-'], { input: 'FROM busybox\nLABEL only=dockerfile\n' });
    assert.equal((await inspect('no-context')).Config.Labels['only'], 'dockerfile');
  });

  test('.dockerignore: patterns, ** and ! exceptions decide what COPY sees', async () => {
    const dir = writeContext(work, 'ignore', {
      Dockerfile: 'FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort > /list\nCMD ["cat", "/list"]\n',
      '.dockerignore': '# comment\n*.log\n**/secret*\nbuild/\n!build/keep.txt\n/docs/*.md\n',
      'app.txt': 'x',
      'debug.log': 'x',
      'sub/deep/secret.key': 'x',
      'sub/ok.txt': 'x',
      'build/out.bin': 'x',
      'build/keep.txt': 'x',
      'docs/a.md': 'x',
      'docs/a.txt': 'x',
    });
    await buildBoth(dir, 'ignore');
    for (const tag of ['ignore-docker', 'ignore-berth'])
      assert.equal(
        await run(tag),
        './.dockerignore\n./Dockerfile\n./app.txt\n./build/keep.txt\n./docs/a.txt\n./sub/ok.txt\n',
        tag,
      );
  });

  test('cache: a rebuild runs no step, a changed file reruns exactly the steps after its COPY, hits survive a restart', async () => {
    const dir = writeContext(work, 'cache', {
      Dockerfile:
        'FROM busybox\nCOPY a.txt /a.txt\nRUN echo one > /one\nCOPY b.txt /b.txt\nRUN cat /b.txt > /two\nCMD ["cat", "/two"]\n',
      'a.txt': 'a',
      'b.txt': 'b1',
    });
    const first = await docker(['build', '-t', 'cache', dir]);
    // dockerd's legacy builder says "Running in" for the two RUNs and for CMD (it commits a container)
    assert.equal((first.stdout.match(/Running in/g) ?? []).length, 3);
    const again = await docker(['build', '-t', 'cache', dir]);
    assert.equal((again.stdout.match(/Running in/g) ?? []).length, 0, again.stdout);
    assert.equal((again.stdout.match(/Using cache/g) ?? []).length, 5);
    const display = await d.berth(['build', '-t', 'cache', dir]);
    assert.match(
      display.stdout,
      /^#3 \[stage-0 3\/6\] RUN echo one > \/one {2}CACHED$/m,
      'berth shows each step and whether it was cached',
    );
    const timed = await d.berth(['build', '-t', 'cache-timed', '--no-cache', dir]);
    assert.match(
      timed.stdout,
      /^#5 \[stage-0 5\/6\] RUN cat \/b.txt > \/two {2}\d+\.\d\ds$/m,
      'a step that ran shows its time',
    );
    writeFileSync(join(dir, 'b.txt'), 'b2');
    const changed = await d.berth(['build', '--progress=plain', '-t', 'cache', dir]);
    const steps = changed.stdout.split(/^Step /m).slice(1);
    const cachedOf = (n: number) => / ---> Using cache/.test(steps[n]!);
    assert.deepEqual([1, 2, 3, 4].map(cachedOf), [true, true, false, false], changed.stdout);
    assert.equal(await run('cache'), 'b2');
  });

  test('the cache survives a daemon restart on the same root; --no-cache reruns every step', async () => {
    const dir = writeContext(work, 'restart', { Dockerfile: 'FROM busybox\nRUN echo built > /f\n' });
    const one = await d.berth(['build', '-q', '-t', 'restart', dir]);
    await d.kill9();
    await d.restart();
    const two = await docker(['build', '-t', 'restart', dir]);
    assert.match(two.stdout, /Using cache/);
    assert.doesNotMatch(two.stdout, /Running in/);
    assert.match(two.stdout, new RegExp(`Successfully built ${one.stdout.trim().slice(7, 19)}`));
    const three = await d.docker(['build', '--no-cache', '-t', 'restart', dir]); // no DOCKER_BUILDKIT=0: without buildx the CLI uses this API anyway
    assert.match(three.stdout, /Running in/);
    assert.doesNotMatch(three.stdout, /Using cache/);
  });

  test('multi-stage: independent stages run concurrently, --target skips what it does not need, COPY --from stage and image', async () => {
    // each of the two stages waits (up to 10 s) for the other's mark in a shared cache mount:
    // both succeed only when they run at the same time
    const sync = `sync-${Date.now()}`;
    const waitFor = (mine: string, other: string) =>
      `RUN --mount=type=cache,id=${sync},target=/sync touch /sync/${mine} && for i in $(seq 100); do [ -e /sync/${other} ] && break; sleep 0.1; done && [ -e /sync/${other} ] && echo ${mine} > /${mine}`;
    const dir = writeContext(work, 'stages', {
      Dockerfile: `FROM busybox AS left
${waitFor('l', 'r')}
FROM busybox AS right
${waitFor('r', 'l')}
FROM busybox AS broken
RUN exit 7
FROM scratch AS final
COPY --from=left /l /
COPY --from=right /r /
COPY --from=busybox /bin/busybox /bin/cat
CMD ["/bin/cat", "/l", "/r"]
FROM broken
`,
    });
    const r = await d.berth(['build', '--target', 'final', '-t', 'stages', dir]);
    assert.doesNotMatch(r.stdout, /broken/, 'the stage --target does not need is not built');
    assert.equal(await run('stages'), 'l\nr\n');
    // a failing stage stops the stages still running: the build answers at once, no step is left
    const racing = writeContext(work, 'racing', {
      Dockerfile:
        'FROM busybox AS slow\nRUN sleep 47\nFROM busybox AS broken\nRUN exit 5\nFROM scratch\nCOPY --from=slow /etc/passwd /a\nCOPY --from=broken /etc/passwd /b\n',
    });
    const raced = await d.berth(['build', racing], { allowFail: true, timeoutMs: 30_000 });
    assert.match(raced.stderr, /Dockerfile:4: The command '\/bin\/sh -c exit 5' returned a non-zero code: 5/);
    assert.equal(
      execFileSync('sh', ['-c', 'pgrep -f "^sleep 47$" || true']).toString().trim(),
      '',
      "the other stage's step was stopped",
    );
    const all = await d.berth(['build', dir], { allowFail: true });
    assert.notEqual(all.code, 0, 'without --target the last stage (FROM broken) is built and fails');
    assert.match(all.stderr, /Dockerfile:6: The command '\/bin\/sh -c exit 7' returned a non-zero code: 7/);
  });

  test('RUN --mount: secrets never reach a layer or the history; cache mounts persist; bind mounts read the context', async () => {
    const token = `s3cr3t-${Date.now()}`;
    const dir = writeContext(work, 'mounts', {
      Dockerfile: `FROM busybox
ARG EXPECT
RUN --mount=type=secret,id=token test "$(md5sum < /run/secrets/token | cut -d' ' -f1)" = "${'$'}EXPECT" && echo used > /used
RUN --mount=type=secret,id=token,target=/etc/tok cat /etc/tok | wc -c > /len
RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /runs
RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cp /mnt/data.txt /copied
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test ! -e /x
CMD ["cat", "/used", "/runs", "/copied"]
`,
      'data.txt': 'bound\n',
    });
    const md5 = execFileSync('md5sum', { input: token }).toString().split(' ')[0]!;
    const secretFile = join(work, 'token-secret');
    writeFileSync(secretFile, token);
    await d.berth([
      'build',
      '-q',
      '--secret',
      `id=token,src=${secretFile}`,
      '--build-arg',
      `EXPECT=${md5}`,
      '-t',
      'mounts',
      dir,
    ]);
    assert.equal(await run('mounts'), `used\n1\nbound\n`);
    assert.equal(
      (await run('mounts', 'sh', '-c', 'ls -d /run/secrets /etc/tok /mnt/data.txt /scratch 2>/dev/null; true')).trim(),
      '',
      'no mount point left in the image',
    );
    // the secret is in no layer and in no history entry or config
    const saved = join(work, 'mounts.tar');
    await d.docker(['save', '-o', saved, 'mounts']);
    const out = join(work, 'mounts-saved');
    mkdirSync(out);
    execFileSync('tar', ['-xf', saved, '-C', out]);
    const blobs = readdirSync(join(out, 'blobs/sha256'));
    for (const b of blobs) {
      const bytes = readFileSync(join(out, 'blobs/sha256', b));
      assert.ok(!bytes.includes(token), `blob ${b} holds the secret`); // layers are stored uncompressed
    }
    assert.ok(!(await d.docker(['history', '--no-trunc', 'mounts'])).stdout.includes(token));
    // the cache mount persists between builds
    await d.berth([
      'build',
      '-q',
      '--no-cache',
      '--secret',
      `id=token,src=${secretFile}`,
      '--build-arg',
      `EXPECT=${md5}`,
      '-t',
      'mounts',
      dir,
    ]);
    assert.equal((await run('mounts', 'cat', '/runs')).trim(), '2');
    // a required secret that is missing fails the step
    const missing = writeContext(work, 'missing-secret', {
      Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n',
    });
    const r = await d.berth(['build', missing], { allowFail: true });
    assert.match(r.stderr, /Dockerfile:2: secret nope not found/);
  });

  test('outputs: --output type=local and type=tar; SOURCE_DATE_EPOCH gives identical images; --cache-from reuses an image', async () => {
    const dir = writeContext(work, 'out', {
      Dockerfile: 'FROM busybox\nCOPY f.txt /f.txt\nRUN echo made > /made\n',
      'f.txt': 'file\n',
    });
    const dest = join(work, 'out-local');
    await d.berth(['build', '-q', '--output', `type=local,dest=${dest}`, dir]);
    assert.equal(readFileSync(join(dest, 'made'), 'utf8'), 'made\n');
    assert.equal(readFileSync(join(dest, 'f.txt'), 'utf8'), 'file\n');
    const tarFile = join(work, 'out.tar');
    await d.berth(['build', '-q', '--output', `type=tar,dest=${tarFile}`, dir]);
    assert.match(execFileSync('tar', ['-tf', tarFile]).toString(), /^made$/m);
    const epoch = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000', '--no-cache'];
    const x = (await d.berth(['build', '-q', ...epoch, dir])).stdout.trim();
    const y = (await d.berth(['build', '-q', ...epoch, dir])).stdout.trim();
    assert.equal(x, y, 'same inputs and SOURCE_DATE_EPOCH: same image id');
    assert.equal((await inspect(x)).Created, '2023-11-14T22:13:20.000Z');
    // --cache-from: with the cache dropped, a build reuses the layers of a given image
    const ref = (await d.berth(['build', '-q', '-t', 'cachefrom', dir])).stdout.trim();
    await d.berth(['builder', 'prune', '-f']);
    const r = await docker(['build', '--cache-from', 'cachefrom', '-t', 'cachefrom2', dir]);
    assert.doesNotMatch(r.stdout, /Running in/, r.stdout);
    assert.deepEqual((await inspect('cachefrom2')).RootFS.Layers, (await inspect(ref)).RootFS.Layers);
  });

  test('FROM an image that is not local pulls it; --pull pulls again and sees the new image', async () => {
    const reg = await startBerthRegistry();
    try {
      const base = `${reg.addr}/build/base:1`;
      const v1 = writeContext(work, 'base-v1', { Dockerfile: 'FROM busybox\nRUN echo v1 > /version\n' });
      await d.berth(['build', '-q', '-t', base, v1]);
      await d.berth(['push', base]);
      await d.docker(['rmi', base]);
      const app = writeContext(work, 'from-registry', { Dockerfile: `FROM ${base}\nCMD ["cat", "/version"]\n` });
      await d.berth(['build', '-q', '-t', 'from-registry', app]);
      assert.equal(await run('from-registry'), 'v1\n', 'the missing base image was pulled');
      const v2 = writeContext(work, 'base-v2', { Dockerfile: 'FROM busybox\nRUN echo v2 > /version\n' });
      await d.berth(['build', '-q', '-t', base, v2]);
      await d.berth(['push', base]);
      await d.berth(['build', '-q', '-t', base, v1]); // the local tag is v1 again; the registry has v2
      await d.berth(['build', '-q', '-t', 'from-registry', app]);
      assert.equal(await run('from-registry'), 'v1\n', 'without --pull the local image is used');
      await docker(['build', '-q', '--pull', '-t', 'from-registry', app]);
      assert.equal(await run('from-registry'), 'v2\n', "--pull fetched the registry's image");
    } finally {
      await reg.stop();
    }
  });

  test('bad Dockerfiles and contexts: a clear error with the line, nothing left behind', async () => {
    const images = async () =>
      (await d.docker(['images', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean).sort();
    const before = await images();
    const cases: Array<[Files, RegExp, string[]?]> = [
      [{ Dockerfile: 'FROM busybox\nRUN true\n\nRUNN echo hi\n' }, /Dockerfile:4: unknown instruction: RUNN/],
      [
        { Dockerfile: 'FROM busybox\nCOPY missing.txt /\n' },
        /Dockerfile:2: .*missing\.txt.*(not found|does not exist)/,
      ],
      [
        { Dockerfile: 'FROM busybox\nCOPY ../../etc/passwd /x\n' },
        /Dockerfile:2: forbidden path outside the build context: \.\.\/\.\.\/etc\/passwd/,
      ],
      [
        { Dockerfile: 'FROM busybox AS one\nRUN true\n' },
        /failed to reach build target nosuchstage/,
        ['--target', 'nosuchstage'],
      ],
      [
        { Dockerfile: 'FROM busybox\nCOPY --from=nosuchstage /x /x\n' },
        /Dockerfile:2: --from=nosuchstage: no build stage and no image of that name/,
      ],
      [
        { Dockerfile: 'FROM busybox\nRUN echo partial > /p && exit 3\n' },
        /Dockerfile:2: The command '\/bin\/sh -c echo partial > \/p && exit 3' returned a non-zero code: 3/,
      ],
      [{ Dockerfile: 'RUN true\n' }, /Dockerfile:1: RUN before FROM|no build stage in current context/],
      [{ Dockerfile: 'FROM busybox\nCOPY --chmod=9z9 a /\n', a: 'x' }, /Dockerfile:2: invalid chmod parameter: 9z9/],
      [{ Dockerfile: 'FROM busybox\nEXPOSE notaport\n' }, /Dockerfile:2: Invalid containerPort: notaport/],
    ];
    for (const [i, [files, re, extra]] of cases.entries()) {
      const dir = writeContext(work, `bad-${i}`, files);
      for (const client of [docker, d.berth]) {
        const r = await client(['build', ...(extra ?? []), dir], { allowFail: true });
        assert.notEqual(r.code, 0, `case ${i} must fail`);
        // docker clients get dockerd's words (no "Dockerfile:N: "; "dockerfile parse error line N: ",
        // "COPY failed: "); berth's CLI keeps the file and line
        const want = client === docker ? new RegExp(re.source.replace(/^Dockerfile:\d+: /, '')) : re;
        assert.match(r.stderr + r.stdout, want, `case ${i}`);
      }
    }
    const noFile = await d.berth(['build', '-f', join(work, 'nope', 'Dockerfile'), work], { allowFail: true });
    assert.notEqual(noFile.code, 0);
    assert.deepEqual(await images(), before, 'no image was left by a failed build');
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '', 'no container was left');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(d.dir) && l.includes('/builder/'));
    assert.deepEqual(mounts, [], 'no mount was left');
    assert.ok(
      !existsSync(join(d.root, 'snapshots/active')) ||
        readdirSync(join(d.root, 'snapshots/active')).filter((k) => k.startsWith('build-')).length === 0,
      'no step snapshot was left',
    );
  });
});
