/**
 * The Docker clients the brief names, unchanged, against berthd: docker-compose (Debian's 1.29,
 * through docker-py), docker-py itself (Debian's python3-docker) and testcontainers (npm).
 * Each drives a small real project: services that find each other by name, volumes, published
 * ports on loopback, exec, logs, health-gated start order, builds, and a clean teardown.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startDaemon, eventually, type Daemon } from './harness.js';
import { freePort } from './registry-harness.js';

describe('Docker clients: docker-compose, docker-py, testcontainers', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test('docker-compose: up, DNS by service name, volume, published port, exec, run, scale, restart, down -v leaves nothing', async () => {
    const port = await freePort();
    const dir = join(d.dir, 'compose-web');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      `version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello-from-web > /www/index.html; httpd -f -p 8080 -h /www"]
    volumes: [www:/www]
    networks: [back]
    ports: ["127.0.0.1:${port}:8080"]
    environment:
      GREETING: hi
  client:
    image: busybox
    command: ["sh", "-c", "until wget -qO- http://web:8080/; do sleep 0.2; done; sleep 300"]
    depends_on: [web]
    networks: [back]
volumes:
  www: {}
networks:
  back: {}
`,
    );
    const compose = (args: string[]) =>
      cli(['docker-compose', '-p', 'cweb', '-f', join(dir, 'docker-compose.yml')], d.env)(args, { timeoutMs: 120_000 });
    await compose(['up', '-d']);
    const ps = (await compose(['ps'])).stdout;
    assert.match(ps, /cweb_web_1 .* Up /);
    assert.match(ps, /cweb_client_1 .* Up /);
    await eventually(
      async () => /hello-from-web/.test((await compose(['logs', 'client'])).stdout),
      10_000,
      'the client reaching web by its service name',
    );
    assert.equal((await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text())).trim(), 'hello-from-web');
    assert.equal((await compose(['exec', '-T', 'web', 'sh', '-c', 'echo $GREETING'])).stdout.trim(), 'hi');
    assert.equal(
      (await compose(['run', '--rm', 'client', 'wget', '-qO-', 'http://web:8080/'])).stdout.trim(),
      'hello-from-web',
    );
    // a second `up` finds everything as the file says: nothing recreated, the network kept
    const again = await compose(['up', '-d', '--scale', 'client=2']);
    assert.doesNotMatch(again.stderr, /needs to be recreated|Recreating cweb_web_1/);
    assert.equal(
      (await d.docker(['ps', '-q', '--filter', 'label=com.docker.compose.service=client'])).stdout.trim().split('\n')
        .length,
      2,
    );
    await compose(['restart', 'web']);
    await eventually(
      () =>
        fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.ok,
          () => false,
        ),
      10_000,
      'web back after restart',
    );
    await compose(['down', '-v']);
    assert.equal(
      (await d.docker(['ps', '-aq', '--filter', 'label=com.docker.compose.project=cweb'])).stdout.trim(),
      '',
    );
    assert.doesNotMatch((await d.docker(['volume', 'ls', '-q'])).stdout, /cweb_www/);
    assert.doesNotMatch((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout, /cweb_back/);
  });

  test('docker-compose: build with args, a dependency that waits for health, --exit-code-from', async () => {
    const dir = join(d.dir, 'compose-build');
    mkdirSync(join(dir, 'app'), { recursive: true });
    writeFileSync(
      join(dir, 'app', 'Dockerfile'),
      'FROM busybox\nARG MSG=default\nRUN echo "$MSG" > /msg\nHEALTHCHECK --interval=300ms --start-period=10s --start-interval=300ms --retries=3 CMD test -f /tmp/ready\nCMD ["sh", "-c", "sleep 1; touch /tmp/ready; sleep 300"]\n',
    );
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      `services:
  app:
    build:
      context: ./app
      args: {MSG: built-by-compose}
    image: cbuild-app:latest
  waiter:
    image: busybox
    command: ["sh", "-c", "echo app-is-healthy; exit 7"]
    depends_on:
      app: {condition: service_healthy}
`,
    );
    const compose = (args: string[], allowFail = false) =>
      cli(['docker-compose', '-p', 'cbuild', '-f', join(dir, 'docker-compose.yml')], d.env)(args, {
        timeoutMs: 120_000,
        allowFail,
      });
    await compose(['build']);
    assert.equal((await d.docker(['run', '--rm', 'cbuild-app', 'cat', '/msg'])).stdout.trim(), 'built-by-compose');
    const up = await compose(['up', '--exit-code-from', 'waiter'], true);
    assert.equal(up.code, 7, up.stderr);
    assert.match(up.stdout, /app-is-healthy/);
    assert.equal(JSON.parse((await d.docker(['inspect', 'cbuild_app_1'])).stdout)[0].State.Health.Status, 'healthy');
    await compose(['down', '--rmi', 'local']);
    assert.equal(
      (await d.docker(['ps', '-aq', '--filter', 'label=com.docker.compose.project=cbuild'])).stdout.trim(),
      '',
    );
  });

  test('docker-py: version, images, run, detached containers, exec, logs, wait, volumes, networks, build, archives, stats, kill', async () => {
    const script = join(d.dir, 'dockerpy.py');
    writeFileSync(
      script,
      `import io, json, tarfile, docker
c = docker.from_env()
out = {}
out['api'] = c.version()['ApiVersion']
out['ping'] = c.ping()
out['tags'] = c.images.get('busybox').tags
out['run'] = c.containers.run('busybox', ['echo', 'hi from py'], remove=True).decode()
ctr = c.containers.run('busybox', ['sh', '-c', 'echo started; sleep 30'], detach=True, name='py1', labels={'from': 'py'}, environment={'X': 'y'})
ctr.reload()
out['status'] = ctr.status
out['labels'] = ctr.labels
r = ctr.exec_run(['sh', '-c', 'echo $X; exit 3'])
out['exec'] = [r.exit_code, r.output.decode()]
out['logs'] = ctr.logs().decode()
out['listed'] = [x.name for x in c.containers.list(filters={'label': 'from=py'})]
ctr.stop(timeout=1)
out['wait'] = ctr.wait()['StatusCode']
ctr.remove()
v = c.volumes.create('pyvol')
n = c.networks.create('pynet')
ctr = c.containers.run('busybox', ['sh', '-c', 'echo data > /v/f; cat /v/f'], volumes={'pyvol': {'bind': '/v', 'mode': 'rw'}}, network='pynet', detach=True)
out['vol'] = [ctr.wait()['StatusCode'], ctr.logs().decode()]
ctr.remove()
n.remove(); v.remove()
# a build (docker-py sends its flags as pull=False, rm=True: dockerd's boolean parsing)
img, _ = c.images.build(fileobj=io.BytesIO(b'FROM busybox\\nRUN echo built > /b\\nCMD ["cat", "/b"]\\n'), tag='pybuilt:1', rm=True)
out['build'] = c.containers.run('pybuilt:1', remove=True).decode()
c.images.remove('pybuilt:1')
ctr = c.containers.run('busybox', ['sleep', '30'], detach=True)
buf = io.BytesIO(); t = tarfile.open(fileobj=buf, mode='w'); ti = tarfile.TarInfo('x.txt'); ti.size = 7; t.addfile(ti, io.BytesIO(b'payload')); t.close()
out['put'] = ctr.put_archive('/tmp', buf.getvalue())
bits, stat = ctr.get_archive('/tmp/x.txt')
out['get'] = [tarfile.open(fileobj=io.BytesIO(b''.join(bits))).extractfile('x.txt').read().decode(), stat['name']]
out['stats'] = sorted(k for k in ['cpu_stats', 'memory_stats', 'pids_stats'] if k in ctr.stats(stream=False))
out['stream'] = [l.decode() for l in c.containers.run('busybox', ['sh', '-c', 'echo 1; echo 2'], stream=True, remove=True)]
ctr.kill(); ctr.remove()  # a kill answers once the container is down: the removal right after works
out['left'] = [x.name for x in c.containers.list(all=True)] + [x.name for x in c.volumes.list()] + [x.name for x in c.networks.list() if x.name == 'pynet']
print(json.dumps(out))
`,
    );
    const r = await cli(['/usr/bin/python3', script], d.env)([], { timeoutMs: 120_000 });
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.match(String(out['api']), /^1\.\d+$/);
    assert.equal(out['ping'], true);
    assert.deepEqual(out['tags'], ['busybox:latest']);
    assert.equal(out['run'], 'hi from py\n');
    assert.equal(out['status'], 'running');
    assert.deepEqual(out['labels'], { from: 'py' });
    assert.deepEqual(out['exec'], [3, 'y\n']);
    assert.equal(out['logs'], 'started\n');
    assert.deepEqual(out['listed'], ['py1']);
    assert.equal(out['wait'], 137, 'sh as pid 1 ignores SIGTERM: killed after the timeout');
    assert.deepEqual(out['vol'], [0, 'data\n']);
    assert.equal(out['build'], 'built\n');
    assert.equal(out['put'], true);
    assert.deepEqual(out['get'], ['payload', 'x.txt']);
    assert.deepEqual(out['stats'], ['cpu_stats', 'memory_stats', 'pids_stats']);
    assert.deepEqual(out['stream'], ['1\n', '2\n']);
    assert.deepEqual(out['left'], []);
  });

  test('testcontainers: wait strategies (log, listening ports, health), mapped ports, exec, copy, network aliases', async () => {
    Object.assign(process.env, {
      DOCKER_HOST: d.host,
      TESTCONTAINERS_RYUK_DISABLED: 'true',
      TESTCONTAINERS_HOST_OVERRIDE: '127.0.0.1',
    });
    const { GenericContainer, Network, Wait } = await import('testcontainers');
    const web = await new GenericContainer('busybox:latest')
      .withCommand([
        'sh',
        '-c',
        'mkdir -p /www; echo hello-tc > /www/index.html; echo started; httpd -f -p 8080 -h /www',
      ])
      .withExposedPorts(8080)
      .withEnvironment({ FOO: 'bar' })
      .withWaitStrategy(Wait.forLogMessage('started'))
      .start();
    try {
      assert.equal(web.getHost(), '127.0.0.1');
      const text = await eventually(
        () =>
          fetch(`http://127.0.0.1:${web.getMappedPort(8080)}/`).then(
            (r) => r.text(),
            () => undefined,
          ),
        5000,
        'the mapped port',
      );
      assert.equal(text.trim(), 'hello-tc');
      assert.deepEqual(await web.exec(['sh', '-c', 'echo $FOO']).then((e) => [e.exitCode, e.output.trim()]), [
        0,
        'bar',
      ]);
      await web.copyContentToContainer([{ content: 'copied!', target: '/tmp/x.txt' }]);
      assert.equal((await web.exec(['cat', '/tmp/x.txt'])).output, 'copied!');
      // dockerd 20.10: an exec the runtime cannot start ends 126 (`docker exec CTR /nonexist` -> 126)
      assert.equal((await web.exec(['/no/such/tool'])).exitCode, 126);
    } finally {
      await web.stop();
    }
    const net = await new Network().start();
    const alpha = await new GenericContainer('busybox:latest')
      .withNetwork(net)
      .withNetworkAliases('alpha')
      .withExposedPorts(80)
      .withCommand(['sh', '-c', 'echo ok > /i; httpd -f -p 80 -h /'])
      .withWaitStrategy(Wait.forListeningPorts())
      .start();
    const beta = await new GenericContainer('busybox:latest').withNetwork(net).withCommand(['sleep', '60']).start();
    try {
      assert.equal((await beta.exec(['wget', '-qO-', 'http://alpha/i'])).output.trim(), 'ok');
    } finally {
      await Promise.all([alpha.stop(), beta.stop()]);
      await net.stop();
    }
    const healthy = await new GenericContainer('busybox:latest')
      .withCommand(['sh', '-c', 'sleep 0.5; touch /ok; sleep 60'])
      .withHealthCheck({ test: ['CMD-SHELL', 'test -f /ok'], interval: 200, timeout: 1000, retries: 5 })
      .withWaitStrategy(Wait.forHealthCheck())
      .start();
    await healthy.stop();
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '', 'stopped containers are removed');
  });
});
