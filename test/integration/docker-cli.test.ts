/** Issue #2 acceptance 1: the real docker CLI against berthd. */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type Daemon } from './harness.js';
import { scenario } from './scenario.js';

describe('docker CLI against berthd', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });
  scenario('docker', () => d);

  test("docker run prints all of a quick container's output, even with starts running in parallel", async () => {
    // conmon could drop an attach client's last packets at exit under load; the log fills the gap
    const script = 'for f in /etc/passwd /etc/group; do cat $f; done; echo one; echo two >&2; echo three';
    const want = (await d.docker(['run', '--rm', 'busybox', 'sh', '-c', script])).stdout;
    for (let round = 0; round < 10; round++) {
      const outs = await Promise.all([1, 2, 3, 4].map(() => d.docker(['run', '--rm', 'busybox', 'sh', '-c', script])));
      for (const o of outs) {
        assert.equal(o.stdout, want, `round ${round}: stdout complete`);
        assert.equal(o.stderr, 'two\n');
      }
    }
  });

  test("docker exec prints all of a quick command's output, even with execs running in parallel", async () => {
    const script = 'for f in /etc/passwd /etc/group; do cat $f; done; echo one; echo two >&2; echo three';
    await d.docker(['run', '-d', '--name', 'exec-target', 'busybox', 'sleep', '300']);
    try {
      const want = (await d.docker(['exec', 'exec-target', 'sh', '-c', script])).stdout;
      for (let round = 0; round < 10; round++) {
        const outs = await Promise.all([1, 2, 3, 4].map(() => d.docker(['exec', 'exec-target', 'sh', '-c', script])));
        for (const o of outs) {
          assert.equal(o.stdout, want, `round ${round}: stdout complete`);
          assert.equal(o.stderr, 'two\n');
        }
      }
    } finally {
      await d.docker(['rm', '-f', 'exec-target']);
    }
  });
});
