/**
 * Starts a private berthd for a test: its own --root, --exec-root and socket under a fresh temp
 * dir, the busybox fixture loaded. Cleans up everything it made (containers, mounts, dirs),
 * and tolerates leftovers of earlier runs.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, existsSync, readFileSync, readdirSync, promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';

const run = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../../..');
export const FIXTURE = process.env['BERTH_FIXTURE'] ?? '/var/cache/berth/fixtures/busybox.tar';

export interface Daemon {
  dir: string;
  root: string;
  sock: string;
  host: string;
  env: NodeJS.ProcessEnv;
  proc: ChildProcess;
  logs(): string;
  /** `docker <args>` against this daemon. */
  docker(
    args: string[],
    opts?: { input?: string; allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `berth <args>` against this daemon. */
  berth(
    args: string[],
    opts?: { input?: string; allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown; text: string }>;
  /** SIGKILL the daemon (containers keep running). */
  kill9(): Promise<void>;
  /** Starts the daemon again on the same root (stopping it first if it still runs). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function cli(bin: string[], env: NodeJS.ProcessEnv) {
  return (
    args: string[],
    opts: { input?: string; allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((res, rej) => {
      const p = spawn(bin[0]!, [...bin.slice(1), ...args], {
        env: { ...env, ...(opts.env ?? {}) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      p.on('close', (code) => {
        clearTimeout(t);
        const r = { code: code ?? -1, stdout, stderr };
        if (r.code !== 0 && !opts.allowFail)
          rej(new Error(`${bin.join(' ')} ${args.join(' ')} exited ${r.code}: ${stderr}${stdout}`));
        else res(r);
      });
      p.stdin.on('error', () => undefined); // a command that exits before reading its stdin (EPIPE)
      p.stdin.end(opts.input ?? '');
    });
}

async function waitForSocket(sock: string, proc: ChildProcess, logFile: string): Promise<void> {
  // a deadline, not a count of tries: on a loaded machine one /_ping can take seconds
  for (const until = Date.now() + 90_000; Date.now() < until;) {
    if (proc.exitCode !== null) throw new Error(`berthd exited ${proc.exitCode}: ${readFileSync(logFile, 'utf8')}`);
    if (existsSync(sock)) {
      const ok = await new Promise<boolean>((r) => {
        const req = http.request({ socketPath: sock, path: '/_ping' }, (res) => {
          res.resume();
          r(res.statusCode === 200);
        });
        req.on('error', () => r(false));
        req.end();
      });
      if (ok) return;
    }
    await sleep(50);
  }
  throw new Error(`berthd did not come up: ${readFileSync(logFile, 'utf8')}`);
}

/** The body of `GET http://host:port/` (3 s to answer). */
export const httpGet = (host: string, port: number): Promise<string> =>
  new Promise<string>((resolve, reject) => {
    const req = http.get({ host, port, path: '/', timeout: 3000 }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve(b));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });

/** Waits until the daemon's log, from byte `from` on, matches `re` (a deadline, as waitForSocket's). */
async function waitForLog(logFile: string, from: number, re: RegExp, proc: ChildProcess): Promise<void> {
  for (const until = Date.now() + 90_000; Date.now() < until;) {
    const text = readFileSync(logFile).subarray(from).toString();
    if (re.test(text)) return;
    if (proc.exitCode !== null) throw new Error(`berthd exited ${proc.exitCode}: ${text}`);
    await sleep(50);
  }
  throw new Error(`berthd's log never said ${re}: ${readFileSync(logFile).subarray(from).toString()}`);
}

/** The daemon ids (first 8 hex digits, as in their links' `berth:<id>` alias) of every berthd running now. */
function liveDaemonIds(): Set<string> {
  const ids = new Set<string>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (!argv.some((a) => a.endsWith('berthd') || a.endsWith('berthd.js'))) continue;
    const i = argv.indexOf('--root');
    const idFile = join(i >= 0 ? argv[i + 1]! : '/var/lib/berth', 'engine-id');
    try {
      ids.add(readFileSync(idFile, 'utf8').trim().replace(/-/g, '').slice(0, 8));
    } catch {
      // a daemon that has not written its id yet has made no link either
    }
  }
  return ids;
}

let staleSwept: Promise<void> | undefined;
/**
 * Leftovers of earlier runs on this machine: the bridges and nftables tables of berthds that were
 * killed and whose test never cleaned up (a run interrupted by hand). Each takes one of the default
 * address pools, and with all of them taken a new daemon cannot make its `bridge` network. Only what
 * carries the mark of a daemon that is no longer running goes; once per test process.
 */
function sweepStaleNetworks(): Promise<void> {
  return (staleSwept ??= (async () => {
    const live = liveDaemonIds();
    const links = JSON.parse(
      (await run('ip', ['-j', '-d', 'link', 'show', 'type', 'bridge'])).stdout || '[]',
    ) as Array<{
      ifname: string;
      ifalias?: string;
    }>;
    for (const l of links) {
      const m = /^berth:([0-9a-f]{8})/.exec(l.ifalias ?? '');
      if (m && !live.has(m[1]!)) await run('ip', ['link', 'del', l.ifname]).catch(() => undefined);
    }
    const tables = (await run('nft', ['list', 'tables']).catch(() => ({ stdout: '' }))).stdout;
    for (const m of tables.matchAll(/^table (ip6?) (berth_([0-9a-f]{8}))$/gm))
      if (!live.has(m[3]!)) await run('nft', ['delete', 'table', m[1]!, m[2]!]).catch(() => undefined);
  })().catch(() => undefined));
}

/**
 * `netns`: run berthd in that (test-made) network namespace, as if on another host. It gets its own
 * mount namespace too, with a sysfs of that network namespace (as `ip netns exec` does) but keeping
 * the host's cgroup mounts (which `ip netns exec` hides, and runc needs).
 */
export async function startDaemon(
  opts: { runtime?: string; loadFixture?: boolean; args?: string[]; netns?: string; umask?: number } = {},
): Promise<Daemon> {
  const dir = mkdtempSync('/var/tmp/berth-test-');
  const root = join(dir, 'root');
  const execRoot = join(dir, 'run');
  const sock = join(dir, 'berth.sock');
  const logFile = join(dir, 'berthd.log');
  const host = `unix://${sock}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_HOST: host,
    BERTH_HOST: host,
    DOCKER_CONFIG: join(dir, 'docker-config'),
  };
  delete env['NODE_EXTRA_CA_CERTS'];
  const args = [
    '--host',
    host,
    '--root',
    root,
    '--exec-root',
    execRoot,
    '--log-level',
    'debug',
    ...(opts.runtime ? ['--runtime', opts.runtime] : []),
    ...(opts.args ?? []),
  ];
  const launch = async () => {
    const out = await fsp.open(logFile, 'a');
    const logStart = (await out.stat()).size;
    const inNetns = opts.netns
      ? [
          'nsenter',
          `--net=/run/netns/${opts.netns}`,
          'unshare',
          '--mount',
          '--propagation',
          'slave',
          'sh',
          '-c',
          'set -e; d=$(mktemp -d); mount --rbind /sys/fs/cgroup $d; mount -t sysfs sysfs /sys; mount --move $d /sys/fs/cgroup; rmdir $d; exec "$0" "$@"',
        ]
      : [];
    // `umask`: the shell that starts berthd has it (berthd sets its own, as dockerd does)
    const inUmask = opts.umask === undefined ? [] : ['sh', '-c', `umask ${opts.umask.toString(8)}; exec "$0" "$@"`];
    const cmd = [...inNetns, ...inUmask, join(REPO, 'bin/berthd'), ...args];
    // in the daemon's own directory: a file a child process drops into its working directory shows there
    const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', out.fd, out.fd], env, cwd: dir });
    await out.close();
    await waitForSocket(sock, proc, logFile);
    // /_ping answers as soon as the socket opens, before the services behind it (cmd/README.md
    // "Start-up"): a test that looks at the host (bridges, modes, mounts) starts once they are open
    await waitForLog(logFile, logStart, /berthd ready/, proc);
    // the CRI endpoint opens after the Docker socket: a daemon is up when both are (or CRI said why not)
    if (!args.includes('--cri=false')) await waitForLog(logFile, logStart, /CRI endpoint (ready|not started)/, proc);
    return proc;
  };
  if (!opts.netns) await sweepStaleNetworks();
  let proc: ChildProcess;
  try {
    proc = await launch();
  } catch (e) {
    await cleanupDir(dir); // a daemon that refused to start leaves nothing behind
    throw e;
  }
  const d: Daemon = {
    dir,
    root,
    sock,
    host,
    env,
    proc,
    logs: () => readFileSync(logFile, 'utf8'),
    docker: cli(['docker'], env),
    berth: cli([join(REPO, 'bin/berth')], env),
    api: (method, path, body) =>
      new Promise((res, rej) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(
          { socketPath: sock, path, method, headers: payload ? { 'Content-Type': 'application/json' } : {} },
          (r) => {
            let text = '';
            r.on('data', (c: Buffer) => (text += c.toString()));
            r.on('end', () => {
              let parsed: unknown = undefined;
              try {
                parsed = text ? JSON.parse(text) : undefined;
              } catch {
                parsed = undefined;
              }
              res({ status: r.statusCode ?? 0, body: parsed, text });
            });
          },
        );
        req.on('error', rej);
        req.end(payload);
      }),
    kill9: async () => {
      const exited = new Promise((r) => d.proc.once('exit', r));
      d.proc.kill('SIGKILL');
      await exited;
    },
    restart: async () => {
      // a daemon still running is stopped first (SIGTERM: containers keep running); a second one on
      // the same root refuses to start, and the old one's socket would answer in its place
      if (d.proc.exitCode === null && d.proc.signalCode === null) {
        const exited = new Promise((r) => d.proc.once('exit', r));
        d.proc.kill('SIGTERM');
        await exited;
      }
      d.proc = await launch();
    },
    stop: async () => {
      // Remove every container (unmounts rootfs, kills conmon), then stop the daemon and delete its dirs.
      try {
        const { stdout } = await d.docker(['ps', '-aq'], { allowFail: true });
        const ids = stdout.split('\n').filter(Boolean);
        if (ids.length) await d.docker(['rm', '-f', ...ids], { allowFail: true });
      } catch {
        /* daemon gone */
      }
      if (d.proc.exitCode === null) {
        const exited = new Promise((r) => d.proc.once('exit', r));
        d.proc.kill('SIGTERM');
        await exited;
      }
      if (process.env['BERTH_TEST_LOGS'])
        await fsp
          .copyFile(logFile, join(process.env['BERTH_TEST_LOGS'], `${dir.split('/').pop()}.log`))
          .catch(() => undefined);
      await cleanupDir(dir);
    },
  };
  if (opts.loadFixture !== false) await d.docker(['load', '-i', FIXTURE]);
  return d;
}

/** Removes the host networking a daemon with root `root` made: its nftables table, its bridges and veths (marked with its id). */
export async function cleanupNetworking(root: string): Promise<void> {
  let id = '';
  try {
    id = readFileSync(join(root, 'engine-id'), 'utf8').trim().replace(/-/g, '').slice(0, 8);
  } catch {
    return;
  }
  if (!id) return;
  for (const c of await fsp.readdir(join(root, 'containers')).catch(() => [] as string[]))
    if (existsSync(`/run/netns/berth-${c.slice(0, 16)}`))
      await run('ip', ['netns', 'del', `berth-${c.slice(0, 16)}`]).catch(() => undefined);
  await run('nft', ['delete', 'table', 'ip', `berth_${id}`]).catch(() => undefined);
  await run('nft', ['delete', 'table', 'ip6', `berth_${id}`]).catch(() => undefined);
  const { stdout } = await run('ip', ['-j', 'link', 'show']).catch(() => ({ stdout: '[]' }));
  for (const l of JSON.parse(stdout || '[]') as Array<{ ifname: string; ifalias?: string }>)
    if (l.ifalias === `berth:${id}`) await run('ip', ['link', 'del', l.ifname]).catch(() => undefined);
}

/** Unmounts whatever is still mounted under `dir`, kills conmons left there, removes it. */
export async function cleanupDir(dir: string): Promise<void> {
  await cleanupNetworking(join(dir, 'root'));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
  for (const m of mounts.sort((a, b) => b.length - a.length)) await run('umount', ['-l', m]).catch(() => undefined);
  await run('pkill', ['-9', '-f', `conmon.*${dir}`]).catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `ms`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 10_000,
  what = 'condition',
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

/** `cmd args` run to completion; its stdout (stderr kept for the error it throws on a failure). */
export const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

/** Whether `cmd args` succeeds. */
export const shOk = (cmd: string, args: string[]): boolean => {
  try {
    sh(cmd, args);
    return true;
  } catch {
    return false;
  }
};

/**
 * A /24 prefix `10.<second>.<n>` that no route of the host uses (other test runs share the host):
 * each test file passes its own `second`, so two files never pick from the same range.
 */
export function freeSubnet(second: number): string {
  const routes = sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (;;) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (!routes.includes(`10.${second}.${n}.`)) return `10.${second}.${n}`;
  }
}
