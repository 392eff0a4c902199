import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  mergeConfig,
  mergeEnv,
  commandOf,
  parseSignal,
  resourcesOf,
  parseSecurityOpts,
} from '../../src/engine/config.js';
import { applyChanges } from '../../src/engine/changes.js';
import { parseCreateBody } from '../../src/spec/engine-api.js';
import { isBerthError } from '../../src/base/errors.js';

const image = { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], WorkingDir: '/w', Labels: { a: '1' } };

test('client env overrides image env by key, order kept', () => {
  assert.deepEqual(mergeEnv(['PATH=/bin', 'A=1'], ['A=2', 'B=3']), ['PATH=/bin', 'A=2', 'B=3']);
});

test('image Cmd used unless the client gives one; a client entrypoint drops the image Cmd', () => {
  assert.deepEqual(mergeConfig({}, image, 'busybox').Cmd, ['sh']);
  assert.deepEqual(mergeConfig({ Cmd: ['echo', 'x'] }, image, 'busybox').Cmd, ['echo', 'x']);
  const ep = mergeConfig({ Entrypoint: ['top'] }, image, 'busybox');
  assert.deepEqual(ep.Entrypoint, ['top']);
  assert.equal(ep.Cmd, null);
  assert.equal(mergeConfig({}, image, 'b').WorkingDir, '/w');
  assert.deepEqual(mergeConfig({ Labels: { b: '2' } }, image, 'b').Labels, { a: '1', b: '2' });
});

test('commandOf: path + args; none is a clear error', () => {
  assert.deepEqual(commandOf({ Entrypoint: ['a'], Cmd: ['b', 'c'] }), { path: 'a', args: ['b', 'c'] });
  assert.throws(() => commandOf({ Cmd: null }), /No command specified/);
});

test('signals by name, SIG prefix, number, RT; bad ones refused', () => {
  assert.equal(parseSignal('SIGTERM'), 15);
  assert.equal(parseSignal('kill'), 9);
  assert.equal(parseSignal('1'), 1);
  assert.equal(parseSignal('SIGRTMIN+3'), 37);
  assert.throws(
    () => parseSignal('SIGNOPE'),
    (e) => isBerthError(e, 'InvalidArgument'),
  );
  assert.throws(() => parseSignal('99'), /Invalid signal/);
});

test('NanoCpus become a CFS quota; conflicts refused', () => {
  assert.deepEqual(resourcesOf({ NanoCpus: 1_500_000_000, Memory: 64 << 20, PidsLimit: 10 }), {
    cpuPeriod: 100_000,
    cpuQuota: 150_000,
    memory: 64 << 20,
    pidsLimit: 10,
  });
  assert.throws(() => resourcesOf({ NanoCpus: 1e9, CpuQuota: 5 }), /Conflicting options/);
});

test('security options: seccomp forms, missing AppArmor/SELinux refused clearly', () => {
  const none = { apparmor: false, selinux: false };
  assert.equal(parseSecurityOpts(['seccomp=unconfined'], none).seccomp, 'unconfined');
  assert.deepEqual(parseSecurityOpts(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], none).seccomp, {
    profile: '{"defaultAction":"SCMP_ACT_ALLOW"}',
  });
  assert.equal(parseSecurityOpts(['no-new-privileges'], none).noNewPrivileges, true);
  assert.throws(() => parseSecurityOpts(['apparmor=foo'], none), /AppArmor is not enabled/);
  assert.throws(() => parseSecurityOpts(['label=type:x'], none), /SELinux is not enabled/);
  assert.equal(parseSecurityOpts(['label=disable'], none).selinuxLabel, undefined);
  assert.throws(() => parseSecurityOpts(['bogus'], none), /Invalid --security-opt/);
});

test('--change: Dockerfile instructions applied to a config', () => {
  const c = applyChanges({ Env: ['A=1'] }, [
    'CMD ["cat", "/x"]',
    'ENV A=2 B="two words"',
    'EXPOSE 80 53/udp',
    'LABEL k=v',
    'WORKDIR /srv',
    'USER app',
    'ENTRYPOINT /bin/run',
  ]);
  assert.deepEqual(c.Cmd, ['cat', '/x']);
  assert.deepEqual(c.Env, ['A=2', 'B=two words']);
  assert.deepEqual(c.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  assert.deepEqual(c.Labels, { k: 'v' });
  assert.equal(c.WorkingDir, '/srv');
  assert.equal(c.User, 'app');
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', '/bin/run']);
  assert.throws(() => applyChanges({}, ['RUN echo']), /RUN is not a valid change command/);
});

test('create body: decoded as dockerd decodes it (Go types, any-case keys, null unset, unknown keys dropped)', () => {
  const b = parseCreateBody({
    Image: 'busybox',
    cmd: 'true',
    Custom: 1,
    hostconfig: {
      memory: 10 << 20,
      Other: 'x',
      Init: null,
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
    },
  });
  assert.deepEqual(b.config.Cmd, ['true']);
  assert.equal(b.config['Custom'], undefined);
  assert.equal(b.hostConfig.Memory, 10 << 20);
  assert.equal(b.hostConfig['Other'], undefined);
  assert.equal('Init' in b.hostConfig, false);
  assert.throws(
    () => parseCreateBody({ HostConfig: { Memory: 'lots' } }),
    /^BerthError: json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64$/,
  );
  assert.throws(
    () => parseCreateBody({ HostConfig: { RestartPolicy: { Name: 'sometimes' } } }),
    /unknown policy 'sometimes'/,
  );
  assert.throws(
    () => parseCreateBody({ HostConfig: { RestartPolicy: { Name: 'always', MaximumRetryCount: 2 } } }),
    /only be used with 'on-failure'/,
  );
  assert.throws(
    () => parseCreateBody({ HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 10, Hard: 5 }] } }),
    /soft limit 10 is above hard limit 5/,
  );
  assert.throws(() => parseCreateBody({ HostConfig: { Memory: 1024 } }), /Minimum memory limit allowed is 6MB/);
});
