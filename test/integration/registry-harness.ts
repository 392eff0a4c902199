/** Starts `berth registry serve` (or Debian's docker-registry) on a free loopback port for a test. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO, cleanupDir } from './harness.js';

export interface Registry {
  dir: string;
  root: string;
  addr: string;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** An htpasswd file (bcrypt, written by Apache's htpasswd) with the given users. */
export function htpasswd(dir: string, users: Record<string, string>): string {
  const file = join(dir, 'htpasswd');
  writeFileSync(
    file,
    Object.entries(users)
      .map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p], { encoding: 'utf8' }).trim())
      .join('\n') + '\n',
  );
  return file;
}

/** GET /v2/ over HTTPS without verifying the (self-signed) certificate. */
function probeTls(addr: string): Promise<boolean> {
  const [host, port] = addr.split(':');
  return new Promise((resolve) => {
    const req = httpsGet({ host, port: Number(port), path: '/v2/', rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
  });
}

async function waitUp(addr: string, proc: ChildProcess, logs: () => string, tls = false): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`registry exited ${proc.exitCode}: ${logs()}`);
    const ok = tls
      ? await probeTls(addr)
      : await fetch(`http://${addr}/v2/`).then(
          (r) => r.status === 200 || r.status === 401,
          () => false,
        );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`registry did not come up: ${logs()}`);
}

function started(dir: string, root: string, addr: string, bin: string, args: string[], tls = false): Promise<Registry> {
  let out = '';
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
  });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const r: Registry = {
    dir,
    root,
    addr,
    proc,
    logs: () => out,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((res) => proc.once('exit', res));
      }
      await cleanupDir(dir);
    },
  };
  return waitUp(addr, proc, r.logs, tls).then(() => r);
}

/** berth's registry; `flags` are extra serve flags (--htpasswd, --public, --auth, ...). */
export async function startBerthRegistry(flags: (dir: string) => string[] = () => []): Promise<Registry> {
  const dir = mkdtempSync('/var/tmp/berth-test-reg-');
  const root = join(dir, 'root');
  const addr = `127.0.0.1:${await freePort()}`;
  const extra = flags(dir);
  return started(
    dir,
    root,
    addr,
    join(REPO, 'bin/berth'),
    ['registry', 'serve', '--addr', addr, '--root', root, ...extra],
    extra.includes('--tls-cert'),
  );
}

/** Debian's docker-registry (distribution 2.8), storage in a temp dir; with `users`, htpasswd auth. */
export async function startDistribution(users?: Record<string, string>): Promise<Registry> {
  const dir = mkdtempSync('/var/tmp/berth-test-dist-');
  const root = join(dir, 'root');
  const addr = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'config.yml');
  const auth = users ? `auth:\n  htpasswd:\n    realm: distribution\n    path: ${htpasswd(dir, users)}\n` : '';
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n${auth}http:\n  addr: ${addr}\n`,
  );
  return started(dir, root, addr, '/usr/bin/docker-registry', ['serve', config]);
}
