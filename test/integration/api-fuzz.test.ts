/**
 * Issue 14, class 6 (API input), acceptance: a bounded, seeded fuzzer over the bodies and query
 * parameters of container create/update, network create/connect, volume create and exec create.
 * Every answer must be below 500, the daemon must stay up, and the real docker CLI must inspect
 * every container (and network and volume) that was stored. The seed is printed: rerun a failure
 * with BERTH_FUZZ_SEED=<seed> (and BERTH_FUZZ_N=<requests>, 300 by default).
 * Then one test per example of the issue.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';
import { configFields, hostConfigFields } from '../../src/spec/engine-schema.js';
import { parseReference } from '../../src/image/reference.js';

const wellFormed = (ref: string) => {
  try {
    parseReference(ref);
    return true;
  } catch {
    return false;
  }
};

/** mulberry32: small, seedable, good enough to pick mutations */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A value serialised as N nested arrays (built as text: JSON.stringify would overflow the stack). */
class Deep {
  constructor(
    readonly depth: number,
    readonly open: '[' | '{',
  ) {}
}

function toJson(v: unknown): string {
  if (v instanceof Deep)
    return v.open === '['
      ? '['.repeat(v.depth) + '1' + ']'.repeat(v.depth)
      : '{"a":'.repeat(v.depth) + '1' + '}'.repeat(v.depth);
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`)
      .join(',')}}`;
  if (typeof v === 'number' && !Number.isFinite(v)) return 'null';
  return JSON.stringify(v) ?? 'null';
}

type Json = unknown;
/** encodeURIComponent that takes lone surrogates too (as U+FFFD, what a Go server would see) */
const enc = (s: string) =>
  encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));
interface Answer {
  status: number;
  text: string;
}

function request(sock: string, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((res, rej) => {
    const req = http.request(
      { socketPath: sock, path, method, headers: body !== undefined ? { 'Content-Type': 'application/json' } : {} },
      (r) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => res({ status: r.statusCode ?? 0, text }));
        r.on('error', rej);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('request timed out')));
    req.on('error', rej);
    req.end(body);
  });
}

const WEIRD_STRINGS = [
  '',
  ' ',
  'x',
  '../../x',
  '/',
  '/../../etc',
  'host',
  'none',
  'container:nosuch',
  'default',
  'bridge',
  '-1',
  '0',
  '1e9',
  'a\u0000b',
  '\u202etxt',
  '💥🐳',
  '\ud800',
  'ſ',
  'K',
  'x'.repeat(5000),
  '80/tcp',
  '70000/tcp',
  '1-2-3',
  'always',
  'on-failure',
  'A=B',
  '=x',
  '/tmp',
  'size=1m',
  'mode=9999',
  'size=99999999999999999999999g',
  '127.0.0.1',
  '::1',
  '999.1.1.1',
  'nofile',
  'ALL',
  'SIGKILL',
  'NOPE',
  '0-1',
  '0-99999',
];
const WEIRD_NUMBERS = [
  0,
  -1,
  1,
  2,
  1.5,
  -0.5,
  1000,
  6 * 1024 * 1024 - 1,
  6 * 1024 * 1024,
  2 ** 31,
  2 ** 32,
  2 ** 53 + 2,
  2 ** 62,
  2 ** 63,
  -(2 ** 63),
  2 ** 64,
  1e30,
  -1e30,
  65535,
  65536,
  262144,
  1e9,
  4194305,
];

function weirdValue(r: () => number, depth = 0): Json {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  switch (Math.floor(r() * 10)) {
    case 0:
    case 1:
      return pick(WEIRD_STRINGS);
    case 2:
    case 3:
      return pick(WEIRD_NUMBERS);
    case 4:
      return r() < 0.5;
    case 5:
      return null;
    case 6:
      return depth > 2 ? [] : Array.from({ length: Math.floor(r() * 3) }, () => weirdValue(r, depth + 1));
    case 7:
      return depth > 2
        ? {}
        : Object.fromEntries(
            Array.from({ length: Math.floor(r() * 3) }, () => [
              pick(WEIRD_STRINGS).slice(0, 20),
              weirdValue(r, depth + 1),
            ]),
          );
    case 8:
      return new Deep(1 + Math.floor(r() * 20000), r() < 0.5 ? '[' : '{');
    default:
      return {
        Name: pick(WEIRD_STRINGS),
        MaximumRetryCount: pick(WEIRD_NUMBERS),
        Soft: pick(WEIRD_NUMBERS),
        Hard: pick(WEIRD_NUMBERS),
        Path: pick(WEIRD_STRINGS),
        Rate: pick(WEIRD_NUMBERS),
      };
  }
}

/** Every (parent, key) of a body's objects and arrays, the body itself excluded. */
function slots(
  v: Json,
  out: Array<[Record<string, Json> | Json[], string | number]> = [],
): Array<[Record<string, Json> | Json[], string | number]> {
  if (Array.isArray(v))
    v.forEach((x, i) => {
      out.push([v, i]);
      slots(x, out);
    });
  else if (v && typeof v === 'object' && !(v instanceof Deep))
    for (const [k, x] of Object.entries(v)) {
      out.push([v as Record<string, Json>, k]);
      slots(x, out);
    }
  return out;
}

function recase(k: string, r: () => number): string {
  const m = Math.floor(r() * 3);
  return m === 0
    ? k.toLowerCase()
    : m === 1
      ? k.toUpperCase()
      : [...k].map((c) => (r() < 0.5 ? c.toLowerCase() : c.toUpperCase())).join('');
}

/** 1-3 mutations of a (deep-copied) body: replace, re-case a key, wrap/unwrap, delete, add a known field. */
function mutate(body: Json, r: () => number, known: string[][]): Json {
  const b = JSON.parse(JSON.stringify(body)) as Record<string, Json>;
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const all = slots(b);
    const op = Math.floor(r() * 6);
    if (op === 5 || all.length === 0) {
      // a known field, somewhere it belongs, with a weird value
      const path = known[Math.floor(r() * known.length)]!;
      let at: Record<string, Json> = b;
      for (const p of path.slice(0, -1)) {
        if (!at[p] || typeof at[p] !== 'object' || Array.isArray(at[p])) at[p] = {};
        at = at[p] as Record<string, Json>;
      }
      at[path[path.length - 1]!] = weirdValue(r);
      continue;
    }
    const [parent, key] = all[Math.floor(r() * all.length)]!;
    const cur = (parent as Record<string | number, Json>)[key];
    const set = (v: Json) => ((parent as Record<string | number, Json>)[key] = v);
    switch (op) {
      case 0:
        set(weirdValue(r));
        break;
      case 1:
        if (!Array.isArray(parent) && typeof key === 'string') {
          delete (parent as Record<string, Json>)[key];
          (parent as Record<string, Json>)[recase(key, r)] = cur;
        }
        break;
      case 2:
        set(Array.isArray(cur) ? (cur[0] ?? null) : cur && typeof cur === 'object' ? Object.values(cur) : [cur]);
        break;
      case 3:
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete (parent as Record<string, Json>)[key];
        break;
      default:
        set(
          typeof cur === 'number'
            ? WEIRD_NUMBERS[Math.floor(r() * WEIRD_NUMBERS.length)]!
            : typeof cur === 'string'
              ? WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!
              : weirdValue(r),
        );
    }
  }
  return b;
}

describe('API fuzz (issue 14, class 6)', () => {
  let d: Daemon;
  let running = '';
  before(async () => {
    d = await startDaemon();
    running = (
      await d.docker(['run', '-d', '--network', 'none', '--name', 'fuzz-exec-target', 'busybox', 'sleep', '1000'])
    ).stdout.trim();
    await d.docker(['network', 'create', 'fuzznet']);
  });
  after(async () => {
    await d?.stop();
  });

  test(
    'a seeded run of mutated bodies: no 5xx, the daemon stays up, docker inspect reads everything stored',
    { timeout: 900_000 },
    async () => {
      const seed = Number(process.env['BERTH_FUZZ_SEED'] ?? Date.now() % 2 ** 31);
      const total = Number(process.env['BERTH_FUZZ_N'] ?? 300);
      console.log(`api-fuzz: seed=${seed} requests=${total} (rerun: BERTH_FUZZ_SEED=${seed} BERTH_FUZZ_N=${total})`);
      const r = prng(seed);
      const known = [
        ...Object.keys(configFields).map((k) => [k]),
        ...Object.keys(hostConfigFields).map((k) => ['HostConfig', k]),
        ['NetworkingConfig', 'EndpointsConfig'],
        ['NetworkingConfig', 'EndpointsConfig', 'fuzznet'],
      ];
      const createBase = {
        Image: 'busybox',
        Cmd: ['true'],
        Env: ['A=1'],
        Labels: { fuzz: '1' },
        ExposedPorts: { '80/tcp': {} },
        WorkingDir: '/',
        Tty: false,
        Healthcheck: { Test: ['CMD', 'true'], Interval: 1e9, Retries: 1 },
        HostConfig: {
          NetworkMode: 'none',
          Memory: 64 * 1024 * 1024,
          MemorySwap: -1,
          CpuShares: 512,
          PidsLimit: 100,
          Tmpfs: { '/run': 'size=1m' },
          PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '0' }] },
          RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
          Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 1024 }],
          CapAdd: ['NET_ADMIN'],
          Dns: ['127.0.0.1'],
          ExtraHosts: ['a:127.0.0.1'],
          Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1 << 20, Mode: 0o755 } }],
        },
        NetworkingConfig: { EndpointsConfig: {} },
      };
      const updateBase = {
        Memory: 128 * 1024 * 1024,
        MemorySwap: -1,
        CpuShares: 256,
        CpuPeriod: 100000,
        CpuQuota: 50000,
        PidsLimit: 200,
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 },
      };
      const networkBase = {
        Name: 'fz',
        Driver: 'bridge',
        Internal: true,
        Labels: { a: 'b' },
        Options: { 'com.docker.network.bridge.name': 'brfz0' },
        IPAM: { Driver: 'default', Config: [{}] },
      };
      const connectBase = { Container: '', EndpointConfig: { Aliases: ['x'], IPAMConfig: { IPv4Address: '' } } };
      const volumeBase = { Name: 'fzv', Driver: 'local', Labels: { a: 'b' }, DriverOpts: {} };
      const execBase = {
        Cmd: ['true'],
        Env: ['A=1'],
        User: '',
        WorkingDir: '/',
        Tty: false,
        AttachStdout: true,
        Privileged: false,
      };
      const counts = { requests: 0, '2xx': 0, '4xx': 0, '5xx': 0, other: 0 };
      const fives: string[] = [];
      const created: string[] = [];
      let uniq = 0;
      const send = async (method: string, path: string, body: Json | undefined) => {
        const text = body === undefined ? undefined : toJson(body);
        const a = await request(d.sock, method, path, text);
        counts.requests++;
        const cls =
          a.status >= 500 ? '5xx' : a.status >= 400 ? '4xx' : a.status >= 200 && a.status < 300 ? '2xx' : 'other';
        counts[cls]++;
        if (a.status >= 500)
          fives.push(`${method} ${path} ${(text ?? '').slice(0, 400)} -> ${a.status} ${a.text.slice(0, 300)}`);
        return a;
      };
      for (let i = 0; i < total; i++) {
        const kind = r();
        const tag = `${seed}-${i}-${uniq++}`;
        if (kind < 0.4) {
          const body = mutate(createBase, r, known);
          const q =
            r() < 0.15
              ? `?name=${enc(WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!)}`
              : r() < 0.1
                ? `?platform=${enc(WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!)}`
                : '';
          const a = await send('POST', `/containers/create${q}`, body);
          if (a.status === 201) created.push((JSON.parse(a.text) as { Id: string }).Id);
        } else if (kind < 0.55) {
          const target = created.length && r() < 0.7 ? created[Math.floor(r() * created.length)]! : running;
          await send(
            'POST',
            `/containers/${target}/update`,
            mutate(
              updateBase,
              r,
              Object.keys(updateBase).map((k) => [k]),
            ),
          );
        } else if (kind < 0.67) {
          const body = mutate(
            { ...networkBase, Name: `fz${i}`, Options: { 'com.docker.network.bridge.name': `brfz${i}` } },
            r,
            [
              ['IPAM'],
              ['Options'],
              ['Name'],
              ['Driver'],
              ['EnableIPv6'],
              ['Attachable'],
              ['ConfigFrom'],
              ['IPAM', 'Config'],
            ],
          );
          const a = await send('POST', '/networks/create', body);
          if (a.status === 201)
            await request(d.sock, 'DELETE', `/networks/${(JSON.parse(a.text) as { Id: string }).Id}`);
        } else if (kind < 0.77) {
          const target = created.length ? created[Math.floor(r() * created.length)]! : running;
          await send(
            'POST',
            '/networks/fuzznet/connect',
            mutate({ ...connectBase, Container: target }, r, [
              ['EndpointConfig'],
              ['Container'],
              ['EndpointConfig', 'MacAddress'],
            ]),
          );
        } else if (kind < 0.87) {
          const a = await send(
            'POST',
            '/volumes/create',
            mutate({ ...volumeBase, Name: `fzv${tag}` }, r, [
              ['DriverOpts'],
              ['Labels'],
              ['Name'],
              ['Driver'],
              ['ClusterVolumeSpec'],
            ]),
          );
          if (a.status === 201)
            await request(d.sock, 'DELETE', `/volumes/${enc((JSON.parse(a.text) as { Name: string }).Name)}`);
        } else if (kind < 0.97) {
          await send(
            'POST',
            `/containers/${running}/exec`,
            mutate(
              execBase,
              r,
              Object.keys(execBase).map((k) => [k]),
            ),
          );
        } else if (kind < 0.985) {
          // (cut to stay under Node's 16 KB header limit: a longer URL gets a 431 and a reset)
          const filters = toJson(
            mutate({ label: ['a=b'], status: ['exited'], name: ['x'] }, r, [
              ['label'],
              ['health'],
              ['ancestor'],
              ['before'],
            ]),
          ).slice(0, 3000);
          await send(
            'GET',
            `/containers/json?all=1&filters=${enc(filters)}&limit=${enc(WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!.slice(0, 30))}`,
            undefined,
          );
        } else {
          // malformed names only: a well-formed one would go to a registry (tests reach no network)
          const name = WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!;
          const tag = r() < 0.5 ? '' : WEIRD_STRINGS[Math.floor(r() * WEIRD_STRINGS.length)]!;
          if (wellFormed(tag ? `${name}:${tag}` : name)) continue;
          await send('POST', `/images/create?fromImage=${enc(name)}&tag=${enc(tag)}`, undefined);
        }
        assert.equal(d.proc.exitCode, null, `berthd died at request ${i} (seed ${seed})`);
      }
      const ping = await request(d.sock, 'GET', '/_ping');
      assert.equal(ping.status, 200, 'the daemon answers after the run');
      // the real docker CLI reads every stored container, network and volume
      const ids = (await d.docker(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
      for (let i = 0; i < ids.length; i += 50) await d.docker(['inspect', ...ids.slice(i, i + 50)]);
      const nets = (await d.docker(['network', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      if (nets.length) await d.docker(['network', 'inspect', ...nets]);
      const vols = (await d.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      if (vols.length) await d.docker(['volume', 'inspect', ...vols]);
      // what create accepted must not fail only at start for a limit: start them (bounded), no 5xx
      const starts = { tried: 0, started: 0, refused: 0 };
      const startErrors: string[] = [];
      for (const id of ids.slice(0, 40)) {
        const a = await send('POST', `/containers/${id}/start`, undefined);
        starts.tried++;
        if (a.status < 400)
          starts.started++; // 304: it was started already (a restart policy, say)
        else {
          starts.refused++;
          startErrors.push(a.text.slice(0, 200));
        }
        await request(d.sock, 'POST', `/containers/${id}/kill`);
      }
      console.log(
        `api-fuzz: started ${starts.started} of ${starts.tried} stored containers (${starts.refused} refused with a 4xx${startErrors.length ? `: ${startErrors.slice(0, 5).join(' | ')}` : ''})`,
      );
      console.log(
        `api-fuzz: seed=${seed} requests=${counts.requests} 2xx=${counts['2xx']} 4xx=${counts['4xx']} 5xx=${counts['5xx']} other=${counts.other}; stored containers=${ids.length} (all inspected by the docker CLI)`,
      );
      assert.equal(counts['5xx'], 0, `5xx answers (seed ${seed}):\n${fives.slice(0, 10).join('\n')}`);
      assert.ok(counts['2xx'] > 0 && counts['4xx'] > 0, 'the run exercised both accepted and refused bodies');
    },
  );
});

describe('API input: the examples of issue 14', () => {
  let d: Daemon;
  const containerDirs = () => readdirSync(join(d.root, 'containers')).filter((n) => /^[a-f0-9]{64}$/.test(n));
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  /** 400 with `message`, and nothing stored: no record, no container dir. */
  const refused = async (method: string, path: string, body: unknown, message: string | RegExp) => {
    const before = [(await d.api('GET', '/containers/json?all=1')).text, containerDirs()] as const;
    const a = await d.api(method, path, body);
    assert.equal(a.status, 400, `${JSON.stringify(body).slice(0, 200)} -> ${a.status} ${a.text}`);
    const msg = (a.body as { message: string }).message;
    if (typeof message === 'string') assert.equal(msg, message);
    else assert.match(msg, message);
    assert.equal((await d.api('GET', '/containers/json?all=1')).text, before[0], 'no record stored');
    // (dirs of containers removed earlier may still be going away in the background)
    assert.deepEqual(
      containerDirs().filter((x) => !before[1].includes(x)),
      [],
      'no container dir made',
    );
  };
  const create = (hc: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    Image: 'busybox',
    Cmd: ['true'],
    ...extra,
    HostConfig: { NetworkMode: 'none', ...hc },
  });

  test("wrong types are 400 with dockerd's Go decoder message (they were 500 TypeErrors or stored)", async () => {
    await refused(
      'POST',
      '/containers/create',
      create({ Memory: 'lots' }),
      'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ CapAdd: { NET_ADMIN: true } }),
      'json: cannot unmarshal object into Go struct field HostConfig.HostConfig.CapAdd of type string',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ Tmpfs: ['/run'] }),
      'json: cannot unmarshal array into Go struct field HostConfig.HostConfig.Tmpfs of type map[string]string',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ NetworkMode: 'bridge', PortBindings: { '80/tcp': [{ HostIp: 127001, HostPort: '8080' }] } }),
      'json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostIp of type string',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ Memory: 2 ** 63 }),
      /^json: cannot unmarshal number 9223372036854776000 into Go struct field HostConfig.HostConfig.Memory of type int64$/,
    );
    await refused(
      'POST',
      '/containers/create',
      create({ CpuShares: 1e30 }),
      /^json: cannot unmarshal number 1e\+30 into Go struct field HostConfig.HostConfig.CpuShares of type int64$/,
    );
    await refused(
      'POST',
      '/containers/create',
      create({}, { Env: 'A=1' }),
      'json: cannot unmarshal string into Go struct field CreateRequest.Env of type []string',
    );
    await refused(
      'POST',
      '/containers/create',
      create({}, { NetworkingConfig: { EndpointsConfig: { bridge: { IPAMConfig: { IPv4Address: 10 } } } } }),
      /cannot unmarshal number into Go struct field EndpointIPAMConfig.NetworkingConfig.EndpointsConfig.IPAMConfig.IPv4Address of type string/,
    );
  });

  test('null is unset and keys match in any case, as dockerd; what is stored the docker CLI inspects', async () => {
    const a = await d.api('POST', '/containers/create?name=nulls', {
      image: 'busybox',
      CMD: 'true',
      Entrypoint: null,
      hostconfig: {
        networkmode: 'none',
        MEMORY: 64 * 1024 * 1024,
        PidsLimit: null,
        PortBindings: { '80/tcp': [{ HostIp: null, HostPort: null }] },
        Tmpfs: null,
      },
    });
    assert.equal(a.status, 201, a.text);
    const [c] = JSON.parse((await d.docker(['inspect', 'nulls'])).stdout) as Array<{
      Config: { Cmd: string[] };
      HostConfig: { Memory: number; PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> };
    }>;
    assert.deepEqual(c!.Config.Cmd, ['true']);
    assert.equal(c!.HostConfig.Memory, 64 * 1024 * 1024);
    assert.deepEqual(c!.HostConfig.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '' }] });
    await d.docker(['rm', 'nulls']);
  });

  test("limits dockerd refuses at create are refused at create, with dockerd's words", async () => {
    await refused('POST', '/containers/create', create({ Memory: 1024 * 1024 }), 'Minimum memory limit allowed is 6MB');
    await refused('POST', '/containers/create', create({ CpuShares: -2 }), 'shares: invalid argument');
    await refused(
      'POST',
      '/containers/create',
      create({ NanoCpus: 1e9, CpuPeriod: 100000 }),
      'Conflicting options: Nano CPUs and CPU Period cannot both be set',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ NanoCpus: 1000e9 }),
      /^Range of CPUs is from 0.01 to \d+.00, as there are only \d+ CPUs available$/,
    );
    await refused(
      'POST',
      '/containers/create',
      create({ CpuPeriod: 5 }),
      'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ NetworkMode: 'bridge', PortBindings: { '80/tcp': [{ HostPort: '70000' }] } }),
      'invalid port specification: "70000"',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ NetworkMode: 'bridge', PortBindings: { '0/tcp': [] } }),
      'invalid port specification: "0/tcp"',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ RestartPolicy: { Name: 'sometimes' } }),
      "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
    );
    await refused(
      'POST',
      '/containers/create',
      create({ RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } }),
      "invalid restart policy: maximum retry count can only be used with 'on-failure'",
    );
    await refused(
      'POST',
      '/containers/create',
      create({ CpusetCpus: '0-999' }),
      /^Requested CPUs are not available - requested 0-999, available: /,
    );
    await refused('POST', '/containers/create', create({ CpuQuota: 2 ** 50 }), /CPU cfs quota can not be larger than/);
    await refused(
      'POST',
      '/containers/create',
      create({ PidsLimit: 2 ** 40 }),
      /PIDs limit \d+ is larger than the kernel's maximum/,
    );
    await refused('POST', '/containers/create', create({ Tmpfs: { '/run': 'mode=99z' } }), 'invalid tmpfs mode: 99z');
    await refused(
      'POST',
      '/containers/create',
      create({ Ulimits: [{ Name: 'nofile', Soft: 8, Hard: 8 }] }),
      /^ulimit nofile=8:8 is too low for the crun runtime/,
    );
    await refused(
      'POST',
      '/containers/create',
      create({ Sysctls: { 'kernel.domainname': 'x' } }),
      "sysctl 'kernel.domainname' is not allowed",
    );
    await refused(
      'POST',
      '/containers/create',
      create({}, { StopSignal: 'SIGRTMIN+99' }),
      'Invalid signal: SIGRTMIN+99',
    );
    await refused(
      'POST',
      '/containers/create',
      create({ Tmpfs: { '/': '' } }),
      "invalid specification: destination can't be '/'",
    );
    await refused(
      'POST',
      '/containers/create',
      create({}, { Volumes: { '/../': {} } }),
      "invalid specification: destination can't be '/'",
    );
  });

  test('absurd limits the kernel takes are accepted and the container starts (no limit fails only at start)', async () => {
    const a = await d.api(
      'POST',
      '/containers/create?name=huge',
      create(
        {
          Memory: 2 ** 62,
          MemorySwap: -1,
          CpuShares: 2 ** 40,
          PidsLimit: 4194304,
          CpuQuota: 2 ** 44 - 1,
          CpuPeriod: 1_000_000,
          ShmSize: 2 ** 40,
        },
        { Cmd: ['sh', '-c', 'cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || true'] },
      ),
    );
    assert.equal(a.status, 201, a.text);
    const r = await d.docker(['start', '-a', 'huge']);
    assert.equal(r.code, 0);
    await d.docker(['inspect', 'huge']);
    await d.docker(['rm', 'huge']);
  });

  test('-v of a host path that does not exist makes it (as dockerd), so the container starts', async () => {
    const src = join(d.dir, 'made-by-v', 'deeper');
    const r = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${src}:/x`,
      'busybox',
      'sh',
      '-c',
      'test -d /x && echo ok',
    ]);
    assert.equal(r.stdout.trim(), 'ok');
    const m = await d.docker(
      [
        'run',
        '--rm',
        '--network',
        'none',
        '--mount',
        `type=bind,source=${join(d.dir, 'absent')},target=/x`,
        'busybox',
        'true',
      ],
      { allowFail: true },
    );
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /bind source path does not exist/);
  });

  test('a health check interval beyond a timer does not make the daemon probe in a loop', async () => {
    const a = await d.api(
      'POST',
      '/containers/create?name=slowprobe',
      create(
        {},
        { Cmd: ['sleep', '30'], Healthcheck: { Test: ['CMD', 'true'], Interval: 2 ** 62, StartInterval: 2 ** 62 } },
      ),
    );
    assert.equal(a.status, 201, a.text);
    await d.docker(['start', 'slowprobe']);
    await new Promise((r) => setTimeout(r, 1500));
    const health = JSON.parse((await d.docker(['inspect', '-f', '{{json .State.Health}}', 'slowprobe'])).stdout) as {
      Status: string;
      Log: unknown[] | null;
    };
    assert.equal(health.Status, 'starting');
    assert.equal(health.Log?.length ?? 0, 0, 'no probe ran yet');
    await d.docker(['rm', '-f', 'slowprobe']);
  });

  test('update: wrong types and absurd limits are 400 and change nothing', async () => {
    await d.docker(['create', '--name', 'upd', '--network', 'none', '--cpus', '1', 'busybox', 'true']);
    const before = (await d.docker(['inspect', '-f', '{{json .HostConfig}}', 'upd'])).stdout;
    const bad = async (body: unknown, message: string | RegExp) => {
      const a = await d.api('POST', '/containers/upd/update', body);
      assert.equal(a.status, 400, a.text);
      const msg = (a.body as { message: string }).message;
      if (typeof message === 'string') assert.equal(msg, message);
      else assert.match(msg, message);
    };
    await bad({ Memory: 'x' }, 'json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64');
    await bad({ Memory: 1 }, 'Minimum memory limit allowed is 6MB');
    await bad({ CpuQuota: 50000 }, 'Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
    await bad({ RestartPolicy: { Name: 'never' } }, /unknown policy 'never'/);
    await bad({ CpuShares: 1e30 }, /cannot unmarshal number 1e\+30/);
    assert.equal((await d.docker(['inspect', '-f', '{{json .HostConfig}}', 'upd'])).stdout, before, 'nothing changed');
    assert.equal((await d.api('POST', '/containers/upd/update', { memory: 64 * 1024 * 1024 })).status, 200);
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.HostConfig.Memory}}', 'upd'])).stdout.trim(),
      String(64 * 1024 * 1024),
    );
    await d.docker(['rm', 'upd']);
  });

  test('network, volume and exec bodies are decoded the same way', async () => {
    const n = await d.api('POST', '/networks/create', { Name: 'n1', IPAM: { Config: { Subnet: '10.99.0.0/24' } } });
    assert.equal(n.status, 400);
    assert.equal(
      (n.body as { message: string }).message,
      'json: cannot unmarshal object into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig',
    );
    const b = await d.api('POST', '/networks/create', {
      Name: 'n2',
      Options: { 'com.docker.network.bridge.name': 'x; reboot' },
    });
    assert.equal(b.status, 400);
    assert.match((b.body as { message: string }).message, /invalid bridge name/);
    assert.doesNotMatch((await d.docker(['network', 'ls'])).stdout, /\bn[12]\b/);
    const v = await d.api('POST', '/volumes/create', { Name: 'v1', DriverOpts: ['a'] });
    assert.equal(v.status, 400);
    assert.equal(
      (v.body as { message: string }).message,
      'json: cannot unmarshal array into Go struct field CreateOptions.DriverOpts of type map[string]string',
    );
    const long = await d.api('POST', '/volumes/create', { Name: 'x'.repeat(300) });
    assert.equal(long.status, 400, long.text);
    assert.match((long.body as { message: string }).message, /volume name is too long/);
    await refused(
      'POST',
      '/containers/create',
      create({ Binds: [`${'y'.repeat(300)}:/data`] }),
      /volume name is too long/,
    );
    assert.equal((await d.docker(['volume', 'ls', '-q'])).stdout.trim(), '');
    await d.docker(['run', '-d', '--name', 'ex', '--network', 'none', 'busybox', 'sleep', '100']);
    const e = await d.api('POST', '/containers/ex/exec', { Cmd: 'ls', Env: [1] });
    assert.equal(e.status, 400);
    assert.equal(
      (e.body as { message: string }).message,
      'json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string',
    );
    const keys = await d.api('POST', '/containers/ex/exec', { Cmd: ['true'], DetachKeys: 'ctrl-zz' });
    assert.equal(keys.status, 400, keys.text);
    assert.equal((keys.body as { message: string }).message, 'Invalid detach keys (ctrl-zz) provided');
    const attach = await d.api('POST', '/containers/ex/attach?stream=1&stdin=1&detachKeys=ctrl-%3F%3F');
    assert.equal(attach.status, 400, attach.text);
    const c = await d.api('POST', '/networks/bridge/connect', {
      Container: 'ex',
      EndpointConfig: { IPAMConfig: { IPv4Address: 5 } },
    });
    assert.equal(c.status, 400);
    await d.docker(['rm', '-f', 'ex']);
  });

  test('a name filter that would backtrack exponentially does not stall the daemon', async () => {
    await d.docker(['create', '--name', 'a'.repeat(40), '--network', 'none', 'busybox', 'true']);
    const t0 = Date.now();
    for (const p of ['(a|a)*c', '((a+))+c', '(a+)+$x']) {
      const a = await d.api(
        'GET',
        `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ name: [p] }))}`,
      );
      assert.equal(a.status, 200);
      assert.deepEqual(a.body, []);
    }
    const hit = await d.api(
      'GET',
      `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ name: ['^/a+$'] }))}`,
    );
    assert.equal((hit.body as unknown[]).length, 1, "plain regexps still match as dockerd's");
    assert.ok(Date.now() - t0 < 10_000, `the filters took ${Date.now() - t0} ms`);
    await d.docker(['rm', 'a'.repeat(40)]);
  });

  test('fromImage=../../x is 400 (was 503)', async () => {
    const a = await d.api('POST', '/images/create?fromImage=..%2F..%2Fx');
    assert.equal(a.status, 400, a.text);
    assert.match((a.body as { message: string }).message, /invalid reference format/);
    const t = await d.api('POST', '/images/create?fromImage=busybox&tag=..%2F..');
    assert.equal(t.status, 400, t.text);
  });
});
