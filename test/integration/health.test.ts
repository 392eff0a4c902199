/**
 * Health checks (issue #2, what a Docker user expects of `run --health-*` and HEALTHCHECK): the
 * status goes starting -> healthy -> unhealthy as the probe's result changes, with the probes'
 * output in State.Health, events, `ps` status and filter; the image's check is inherited,
 * `--no-healthcheck` turns it off; probes go on across a daemon restart; bad values are refused.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';

interface Health {
  Status: string;
  FailingStreak: number;
  Log: Array<{ ExitCode: number; Output: string; Start: string; End: string }>;
}

describe('health checks', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });
  const health = async (name: string) =>
    JSON.parse((await d.docker(['inspect', '-f', '{{json .State.Health}}', name])).stdout) as Health | null;
  const status = async (name: string) =>
    (await d.docker(['ps', '-a', '--filter', `name=^${name}$`, '--format', '{{.Status}}'])).stdout.trim();

  test('starting, healthy, unhealthy as the probe says; output, events, ps status and filter', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    // the test makes it ready and breaks it (exec), not the clock; failures before the first success
    // fall in the start period, so it says `starting` until then however slow the host is
    await d.docker([
      'run',
      '-d',
      '--name',
      'hc',
      '--health-cmd',
      'test -f /tmp/ok && echo fine',
      '--health-interval',
      '300ms',
      '--health-retries',
      '2',
      '--health-timeout',
      '2s',
      '--health-start-period',
      '60s',
      '--health-start-interval',
      '300ms',
      'busybox',
      'sleep',
      '100',
    ]);
    assert.match(await status('hc'), /^Up .* \(health: starting\)$/);
    await eventually(async () => ((await health('hc'))?.Log.length ?? 0) >= 2, 5000, 'two failed probes');
    assert.match(await status('hc'), /\(health: starting\)$/, 'failures within the start period do not count');
    await d.docker(['exec', 'hc', 'touch', '/tmp/ok']);
    await eventually(async () => (await health('hc'))?.Status === 'healthy', 5000, 'healthy');
    assert.match(await status('hc'), /^Up .* \(healthy\)$/);
    assert.equal((await d.docker(['ps', '-q', '--filter', 'health=healthy'])).stdout.trim().length, 12);
    const ok = (await health('hc'))!;
    assert.equal(ok.FailingStreak, 0);
    assert.ok(ok.Log.length >= 1 && ok.Log.length <= 5, 'the last five probes at most');
    assert.deepEqual([ok.Log.at(-1)!.ExitCode, ok.Log.at(-1)!.Output], [0, 'fine\n']);
    await d.docker(['exec', 'hc', 'rm', '/tmp/ok']);
    await eventually(async () => (await health('hc'))?.Status === 'unhealthy', 8000, 'unhealthy');
    const bad = (await health('hc'))!;
    assert.ok(bad.FailingStreak >= 2);
    assert.equal(bad.Log.at(-1)!.ExitCode, 1);
    assert.match(await status('hc'), /\(unhealthy\)$/);
    assert.equal((await d.docker(['ps', '-q', '--filter', 'health=healthy'])).stdout.trim(), '');
    const ev = (
      await d.docker([
        'events',
        '--since',
        String(since),
        '--until',
        String(Math.ceil(Date.now() / 1000) + 1),
        '--filter',
        'container=hc',
        '--format',
        '{{.Action}}',
      ])
    ).stdout;
    const changes = ev.split('\n').filter((l) => l.startsWith('health_status'));
    assert.deepEqual(changes.slice(-2), ['health_status: healthy', 'health_status: unhealthy']);
    const exact = (
      await d.docker([
        'events',
        '--since',
        String(since),
        '--until',
        String(Math.ceil(Date.now() / 1000) + 1),
        '--filter',
        'container=hc',
        '--filter',
        'event=health_status: unhealthy',
        '--format',
        '{{.Action}}',
      ])
    ).stdout
      .trim()
      .split('\n');
    assert.ok(
      exact.length >= 1 && exact.every((a) => a === 'health_status: unhealthy'),
      'an event filter with the whole action',
    );
    // a stopped container keeps its last health; its next start begins again at starting
    await d.docker(['stop', '-t', '0', 'hc']);
    assert.equal((await health('hc'))!.Status, 'unhealthy');
    await d.docker(['start', 'hc']);
    assert.equal((await health('hc'))!.Status, 'starting');
    await d.docker(['rm', '-f', 'hc']);
  });

  test("a probe over its timeout is killed and fails; the image's HEALTHCHECK is inherited, --no-healthcheck turns it off", async () => {
    const ctx = mkdtempSync(join(d.dir, 'hc-'));
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'FROM busybox\nHEALTHCHECK --interval=200ms --timeout=300ms --retries=1 CMD sleep 5\n',
    );
    await d.docker(['build', '-q', '-t', 'slowcheck', ctx]);
    await d.docker(['run', '-d', '--name', 'slow', 'slowcheck', 'sleep', '100']);
    await eventually(async () => (await health('slow'))?.Status === 'unhealthy', 8000, 'unhealthy by timeout');
    const h = (await health('slow'))!;
    assert.deepEqual([h.Log[0]!.ExitCode, h.Log[0]!.Output], [-1, 'Health check exceeded timeout (0.3s)']);
    assert.ok(Date.parse(h.Log[0]!.End) - Date.parse(h.Log[0]!.Start) < 3000, 'killed, not waited for');
    // the run's flags override single fields of the image's check
    await d.docker(['run', '-d', '--name', 'quick', '--health-cmd', 'true', 'slowcheck', 'sleep', '100']);
    await eventually(
      async () => (await health('quick'))?.Status === 'healthy',
      5000,
      'healthy with the overriding command',
    );
    await d.docker(['run', '-d', '--name', 'off', '--no-healthcheck', 'slowcheck', 'sleep', '100']);
    assert.equal(await health('off'), null);
    assert.doesNotMatch(await status('off'), /health/);
    assert.equal(
      (await d.docker(['ps', '-q', '--filter', 'health=none', '--filter', 'name=off'])).stdout.trim().length,
      12,
    );
    await d.docker(['rm', '-f', 'slow', 'quick', 'off']);
  });

  test('probes go on after a kill -9 of the daemon; berth run takes the same flags', async () => {
    await d.berth([
      'run',
      '-d',
      '--name',
      'survivor',
      '--health-cmd',
      'test -f /tmp/flag',
      '--health-interval',
      '200ms',
      '--health-retries',
      '1',
      'busybox',
      'sleep',
      '100',
    ]);
    await eventually(async () => (await health('survivor'))?.Status === 'unhealthy', 5000, 'unhealthy');
    await d.kill9();
    await d.restart();
    assert.equal((await health('survivor'))!.Status, 'unhealthy', 'kept across the restart');
    await d.docker(['exec', 'survivor', 'touch', '/tmp/flag']);
    await eventually(
      async () => (await health('survivor'))?.Status === 'healthy',
      5000,
      'healthy: the restarted daemon probes',
    );
    await d.docker(['rm', '-f', 'survivor']);
  });

  test('bad health check values are refused and make nothing', async () => {
    const before = (await d.docker(['ps', '-aq'])).stdout;
    const tooShort = await d.docker(
      ['run', '-d', '--health-cmd', 'true', '--health-interval', '500us', 'busybox', 'true'],
      { allowFail: true },
    );
    assert.notEqual(tooShort.code, 0);
    assert.match(tooShort.stderr, /Interval in Healthcheck cannot be less than 1ms/);
    const api = await d.api('POST', '/containers/create', {
      Image: 'busybox',
      Healthcheck: { Test: ['CMD-SHELL', 'true'], Retries: -1 },
    });
    assert.equal(api.status, 400);
    assert.match(api.text, /Retries in Healthcheck cannot be negative/);
    const kind = await d.api('POST', '/containers/create', {
      Image: 'busybox',
      Healthcheck: { Test: ['SOMETIMES', 'true'] },
    });
    assert.equal(kind.status, 400);
    const filter = await d.docker(['ps', '--filter', 'health=fine'], { allowFail: true });
    assert.notEqual(filter.code, 0);
    assert.match(filter.stderr, /Unrecognised filter value for health: fine/);
    const flag = await d.berth(['run', '--health-interval', 'soon', 'busybox', 'true'], { allowFail: true });
    assert.notEqual(flag.code, 0);
    assert.match(flag.stderr, /invalid duration "soon"/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout, before, 'no container made');
  });
});
