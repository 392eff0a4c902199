/**
 * Issue #17: Exec, Attach and PortForward through the URL the CRI RPCs answer, with a SPDY/3.1
 * client that behaves as client-go's remotecommand and portforward (./spdy-client.ts), against a
 * real berthd: the streaming server (src/cri/stream/) over berth's engine (src/cri/streaming-backend.ts).
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, eventually, type Daemon } from './harness.js';
import { criClient, codeOf, type CriClient, type Msg } from './cri-client.js';
import { dialPortForward, openForward, readAll, runCommandClient } from './spdy-client.js';
import { dialWs } from './ws-client.js';

describe('CRI streaming: exec, attach, port-forward through the URLs', () => {
  const dir = mkdtempSync('/tmp/berth-cristream-');
  const sock = join(dir, 'cri.sock');
  let d: Daemon;
  let cri: CriClient;
  let pod = '';
  let web = '';
  let echo = '';
  const config: Msg = {
    metadata: { name: 'stream', uid: 'uid-stream', namespace: 'default', attempt: 0 },
    hostname: 'stream',
    log_directory: join(dir, 'logs'),
  };

  before(async () => {
    d = await startDaemon({ args: ['--cri-socket', sock, '--cni-conf-dir', join(dir, 'no-cni')] });
    cri = criClient(sock);
    pod = (await cri.runtime('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    web = (
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config: config,
        config: {
          metadata: { name: 'web' },
          image: { image: 'busybox' },
          command: ['sh', '-c', 'mkdir -p /www; echo forwarded > /www/index.html; exec httpd -f -p 8080 -h /www'],
          log_path: 'web/0.log',
        },
      })
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: web });
  });

  after(async () => {
    if (cri) {
      if (pod) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
      cri.close();
    }
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const execUrl = async (cmd: string[], o: { stdin?: boolean; tty?: boolean } = {}) =>
    (
      await cri.runtime('Exec', {
        container_id: web,
        cmd,
        stdin: o.stdin ?? false,
        stdout: true,
        stderr: !o.tty,
        tty: o.tty ?? false,
      })
    )['url'] as string;

  test('Exec: stdout and stderr apart, the exit code (v4 status); the URL is one-time', async () => {
    const url = await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\//);
    const r = await runCommandClient(url, { stdout: true, stderr: true });
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 7);
    const ok = await runCommandClient(await execUrl(['true']), { stdout: true, stderr: true });
    assert.equal(ok.exitCode, 0);
    await assert.rejects(runCommandClient(url, { stdout: true, stderr: true }), /404/);
  });

  test('Exec over websocket v5 (kubectl 1.30+): stdin and its close, stdout, stderr, the exit status', async () => {
    const url = await execUrl(['sh', '-c', 'cat; echo done >&2; exit 5'], { stdin: true });
    const r = await dialWs(url, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    assert.equal(r.status, 101);
    const ws = r.ws!;
    assert.equal(ws.protocol, 'v5.channel.k8s.io');
    ws.send(0, 'hello ');
    ws.send(0, 'pod');
    ws.frame(2, Buffer.from([255, 0])); // v5: stdin is done
    const { channels } = await ws.collect();
    assert.equal(channels.get(1)?.toString(), 'hello pod');
    assert.equal(channels.get(2)?.toString(), 'done\n');
    const st = JSON.parse(channels.get(3)!.toString()) as {
      reason: string;
      details: { causes: { message: string }[] };
    };
    assert.equal(st.reason, 'NonZeroExitCode');
    assert.equal(st.details.causes[0]!.message, '5');
  });

  test('Exec with stdin: the input reaches the process, EOF ends it', async () => {
    const input = Buffer.from('line one\nline two\n');
    const r = await runCommandClient(await execUrl(['wc', '-l'], { stdin: true }), {
      stdout: true,
      stderr: true,
      input,
    });
    assert.equal(r.stdout.toString().trim(), '2');
    assert.equal(r.exitCode, 0);
  });

  test('Exec with a tty: one output stream, the terminal size from the resize stream', async () => {
    const r = await runCommandClient(
      await execUrl(
        // waits for the size to arrive (a condition, not a time): then prints it
        ['sh', '-c', 'for i in $(seq 100); do s=$(stty size); [ "$s" = "37 91" ] && break; sleep 0.1; done; echo $s'],
        { stdin: true, tty: true },
      ),
      {
        stdout: true,
        tty: true,
        input: Buffer.alloc(0),
        resizes: [{ Width: 91, Height: 37 }],
      },
    );
    assert.match(r.stdout.toString(), /37 91/);
    assert.equal(r.exitCode, 0);
  });

  test('Attach: stdin to the main process, its output back, until it exits', async () => {
    echo = (
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config: config,
        config: {
          metadata: { name: 'echo' },
          image: { image: 'busybox' },
          command: ['sh', '-c', 'read line; echo "got: $line"; echo bye >&2'],
          stdin: true,
          stdin_once: true,
          log_path: 'echo/0.log',
        },
      })
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: echo });
    const url = (
      await cri.runtime('Attach', { container_id: echo, stdin: true, stdout: true, stderr: true, tty: false })
    )['url'] as string;
    assert.match(url, /\/attach\//);
    const r = await runCommandClient(url, { stdout: true, stderr: true, input: Buffer.from('hello attach\n') });
    assert.equal(r.stdout.toString(), 'got: hello attach\n');
    assert.equal(r.stderr.toString(), 'bye\n');
    await eventually(
      async () =>
        ((await cri.runtime('ContainerStatus', { container_id: echo })) as { status: { state: string } }).status
          .state === 'CONTAINER_EXITED',
      20_000,
      'the attached container to exit',
    );
  });

  test("PortForward: a connection to the pod's localhost:8080 through the URL", async () => {
    const url = (await cri.runtime('PortForward', { pod_sandbox_id: pod, port: [8080] }))['url'] as string;
    assert.match(url, /\/portforward\//);
    const conn = await dialPortForward(url);
    try {
      const f = await openForward(conn, 8080, 0);
      f.data.write('GET / HTTP/1.0\r\nHost: pod\r\n\r\n');
      const body = (await readAll(f.data)).toString();
      assert.match(body, /^HTTP\/1\.[01] 200/);
      assert.match(body, /\r\n\r\nforwarded\n$/);
      assert.equal(await f.error, '');
    } finally {
      conn.close();
    }
  });

  test('refusals before any URL: a container not running, a bad port, no stream asked', async () => {
    const refuse = async (p: Promise<unknown>, code: number) => {
      await assert.rejects(p, (e: unknown) => codeOf(e) === code);
    };
    await refuse(cri.runtime('Exec', { container_id: echo, cmd: ['true'], stdout: true }), status.FAILED_PRECONDITION);
    await refuse(cri.runtime('Exec', { container_id: web, cmd: ['true'] }), status.INVALID_ARGUMENT);
    await refuse(
      cri.runtime('Exec', { container_id: web, cmd: ['true'], stdout: true, stderr: true, tty: true }),
      status.INVALID_ARGUMENT,
    );
    await refuse(cri.runtime('Exec', { container_id: 'nope', cmd: ['true'], stdout: true }), status.NOT_FOUND);
    await refuse(cri.runtime('PortForward', { pod_sandbox_id: pod, port: [70000] }), status.INVALID_ARGUMENT);
    await refuse(cri.runtime('PortForward', { pod_sandbox_id: 'nope', port: [80] }), status.NOT_FOUND);
  });
});
