/** spec/go-json.ts + engine-api.ts: request bodies decoded and checked as dockerd does (issue 14, class 6). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCreateBody, parseUpdateBody } from '../../src/spec/engine-api.js';
import { parseExecCreate } from '../../src/spec/exec-api.js';
import { parseNetworkConnect, parseNetworkCreate } from '../../src/spec/network-api.js';
import { parseVolumeCreate } from '../../src/spec/volume-api.js';

const refuses = (f: () => unknown, msg: string | RegExp) =>
  assert.throws(f, (e: Error & { code?: string }) => {
    assert.equal(e.code, 'InvalidArgument', `${e.message} must be InvalidArgument`);
    if (typeof msg === 'string') assert.equal(e.message, msg);
    else assert.match(e.message, msg);
    return true;
  });

test("wrong JSON types: Go's decoder message", () => {
  refuses(
    () => parseCreateBody({ HostConfig: { Memory: 'x' } }),
    'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64',
  );
  refuses(
    () => parseCreateBody({ Tty: 'yes' }),
    'json: cannot unmarshal string into Go struct field CreateRequest.Tty of type bool',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { Tmpfs: ['/run'] } }),
    'json: cannot unmarshal array into Go struct field HostConfig.HostConfig.Tmpfs of type map[string]string',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { PortBindings: { '80/tcp': [{ HostIp: 5 }] } } }),
    'json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostIp of type string',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { CapAdd: { a: 1 } } }),
    'json: cannot unmarshal object into Go struct field HostConfig.HostConfig.CapAdd of type string',
  );
  refuses(
    () => parseCreateBody({ HostConfig: 'x' }),
    'json: cannot unmarshal string into Go struct field CreateRequest.HostConfig of type container.HostConfig',
  );
  refuses(() => parseCreateBody([]), 'json: cannot unmarshal array into Go value of type container.CreateRequest');
  refuses(
    () => parseCreateBody({ HostConfig: { BlkioWeight: 70000 } }),
    'json: cannot unmarshal number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16',
  );
});

test('numbers out of their Go range', () => {
  refuses(
    () => parseCreateBody({ HostConfig: { Memory: 2 ** 63 } }),
    /cannot unmarshal number 9223372036854776000 into Go struct field HostConfig.HostConfig.Memory of type int64/,
  );
  refuses(
    () => parseCreateBody({ HostConfig: { CpuShares: 1e30 } }),
    /cannot unmarshal number 1e\+30 into .*CpuShares of type int64/,
  );
  refuses(() => parseCreateBody({ HostConfig: { Memory: 1.5e7 + 0.5 } }), /cannot unmarshal number 15000000.5/);
  refuses(() => parseCreateBody({ HostConfig: { ShmSize: -1 } }), 'SHM size can not be less than 0');
});

test('keys in any case, null as unset, StrSlice as a string', () => {
  const b = parseCreateBody({
    image: 'busybox',
    CMD: 'sh',
    entrypoint: null,
    hostCONFIG: { memory: 64 << 20, CPUSHARES: 512, pidslimit: null, PORTBINDINGS: { '80/tcp': [null] } },
  });
  assert.equal(b.config.Image, 'busybox');
  assert.deepEqual(b.config.Cmd, ['sh']);
  assert.equal('Entrypoint' in b.config, false);
  assert.equal(b.hostConfig.Memory, 64 << 20);
  assert.equal(b.hostConfig.CpuShares, 512);
  assert.equal('PidsLimit' in b.hostConfig, false);
  assert.deepEqual(b.hostConfig.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '' }] });
});

test("dockerd's limits at create", () => {
  refuses(() => parseCreateBody({ HostConfig: { Memory: 1 << 20 } }), 'Minimum memory limit allowed is 6MB');
  refuses(() => parseCreateBody({ HostConfig: { Memory: -5 } }), 'Minimum memory limit allowed is 6MB');
  refuses(() => parseCreateBody({ HostConfig: { CpuShares: -1 } }), 'shares: invalid argument');
  refuses(
    () => parseCreateBody({ HostConfig: { NanoCpus: 1e9, CpuPeriod: 100000 } }),
    'Conflicting options: Nano CPUs and CPU Period cannot both be set',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { NanoCpus: 1e9, CpuQuota: 50000 } }),
    'Conflicting options: Nano CPUs and CPU Quota cannot both be set',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { CpuPeriod: 10 } }),
    'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)',
  );
  refuses(() => parseCreateBody({ HostConfig: { CpuQuota: 2 ** 50 } }), /CPU cfs quota can not be larger/);
  refuses(
    () => parseCreateBody({ HostConfig: { MemorySwap: 1 << 30 } }),
    'You should always set the Memory limit when using Memoryswap limit, see usage',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { Memory: 64 << 20, MemorySwap: 32 << 20 } }),
    'Minimum memoryswap limit should be larger than memory limit, see usage',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { RestartPolicy: { Name: 'bogus' } } }),
    /invalid restart policy: unknown policy 'bogus'/,
  );
  refuses(
    () => parseCreateBody({ HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: -1 } } }),
    'invalid restart policy: maximum retry count cannot be negative',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { PortBindings: { '99999/tcp': [] } } }),
    'invalid port specification: "99999/tcp"',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '70000' }] } } }),
    'invalid port specification: "70000"',
  );
  refuses(
    () => parseCreateBody({ HostConfig: { PortBindings: { '80/tcp': [{ HostIp: 'not-an-ip' }] } } }),
    'invalid IP address: not-an-ip',
  );
  refuses(() => parseCreateBody({ HostConfig: { Tmpfs: { run: '' } } }), /mount path must be absolute/);
  refuses(
    () => parseCreateBody({ WorkingDir: 'rel' }),
    "the working directory 'rel' is invalid, it needs to be an absolute path",
  );
  refuses(() => parseCreateBody({ Env: ['=x'] }), 'invalid environment variable: =x');
  refuses(() => parseCreateBody({ Cmd: ['a\u0000b'] }), /NUL/);
  refuses(
    () => parseCreateBody({ HostConfig: { Sysctls: { 'vm.swappiness': '1' } } }),
    "sysctl 'vm.swappiness' is not allowed",
  );
});

test('update, network, volume and exec bodies', () => {
  refuses(
    () => parseUpdateBody({ Memory: 'x' }),
    'json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64',
  );
  assert.deepEqual(parseUpdateBody({ memory: 64 << 20, RestartPolicy: { Name: '' } }), {
    resources: { Memory: 64 << 20 },
  });
  refuses(
    () => parseNetworkCreate({ Name: 'n', IPAM: { Config: { Subnet: 'x' } } }),
    'json: cannot unmarshal object into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig',
  );
  refuses(
    () => parseNetworkCreate({ Name: 'n', Options: { 'com.docker.network.bridge.name': 'a;reboot' } }),
    /invalid bridge name/,
  );
  refuses(
    () => parseNetworkConnect({ Container: 'c', EndpointConfig: { IPAMConfig: { IPv4Address: 7 } } }),
    /cannot unmarshal number into Go struct field EndpointIPAMConfig.EndpointConfig.IPAMConfig.IPv4Address of type string/,
  );
  refuses(
    () => parseVolumeCreate({ Name: 'v', Labels: ['a'] }),
    'json: cannot unmarshal array into Go struct field CreateOptions.Labels of type map[string]string',
  );
  refuses(
    () => parseExecCreate({ Cmd: 'ls' }),
    'json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string',
  );
  refuses(() => parseExecCreate({}), 'No exec command specified');
  assert.deepEqual(parseExecCreate({ cmd: ['ls'], tty: true }).Tty, true);
});

test('deep nesting is refused at the first level that does not fit', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  refuses(
    () => parseCreateBody({ HostConfig: { Binds: deep } }),
    /cannot unmarshal array into Go struct field HostConfig.HostConfig.Binds of type string/,
  );
  assert.deepEqual(parseCreateBody({ Unknown: deep }).config, {});
});

test('what is stored prints as numbers Go reads back: -2^63 is refused (it prints as -9223372036854776000)', () => {
  refuses(
    () =>
      parseCreateBody({
        HostConfig: { Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: -(2 ** 63) } }] },
      }),
    /cannot unmarshal number -9223372036854776000 into Go struct field TmpfsOptions.HostConfig.Mounts.TmpfsOptions.SizeBytes of type int64/,
  );
  assert.equal(parseCreateBody({ HostConfig: { Memory: 2 ** 62 } }).hostConfig.Memory, 2 ** 62);
});

test('extra hosts split at the first colon, as dockerd: IPv6 and host-gateway are entries, a bad address is refused', () => {
  assert.deepEqual(
    parseCreateBody({ HostConfig: { ExtraHosts: ['a:127.0.0.1', 'b:::1', 'c:[fe80::1]', 'd:host-gateway'] } })
      .hostConfig.ExtraHosts,
    ['a:127.0.0.1', 'b:::1', 'c:[fe80::1]', 'd:host-gateway'],
  );
  refuses(
    () => parseCreateBody({ HostConfig: { ExtraHosts: ['a:not-an-ip'] } }),
    'invalid IP address in add-host: "a:not-an-ip"',
  );
  refuses(() => parseCreateBody({ HostConfig: { ExtraHosts: ['a b:1.2.3.4'] } }), /invalid IP address in add-host/);
});

test('strings past execve limits are refused at create (they failed at start with E2BIG)', () => {
  refuses(() => parseCreateBody({ Env: [`A=${'x'.repeat(200_000)}`] }), /argument list too long/);
  refuses(
    () => parseCreateBody({ Cmd: Array.from({ length: 20 }, () => 'y'.repeat(100_000)) }),
    /argument list too long/,
  );
});

test("null as Go's decoder takes it: nil for pointers, lists and maps, a no-op for other fields", () => {
  const b = parseCreateBody({
    HostConfig: { Memory: 64 << 20, memory: null, Binds: ['/a:/b'], binds: null, PidsLimit: 5, pidslimit: null },
  });
  assert.equal(b.hostConfig.Memory, 64 << 20);
  assert.equal('Binds' in b.hostConfig, false);
  assert.equal('PidsLimit' in b.hostConfig, false);
});

test('a __proto__ key of a map is a key like any other', () => {
  refuses(
    () => parseCreateBody(JSON.parse('{"ExposedPorts": {"__proto__": {}}}')),
    'invalid port specification: "__proto__"',
  );
  const b = parseCreateBody(JSON.parse('{"Labels": {"__proto__": "x"}}'));
  assert.equal(Object.getPrototypeOf(b.config.Labels), Object.prototype);
  assert.deepEqual(Object.keys(b.config.Labels ?? {}), ['__proto__']);
  assert.equal(JSON.stringify(b.config.Labels), '{"__proto__":"x"}');
});
