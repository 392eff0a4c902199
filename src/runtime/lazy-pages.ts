/**
 * Post-copy's two processes: the lazy checkpoint (`<runtime> checkpoint --lazy-pages
 * --page-server`: CRIU dumps everything but anonymous memory and then serves those pages) and,
 * where the checkpoint is restored, CRIU's `lazy-pages` daemon (fetches pages from that server
 * as the restored process faults on them, and the rest in the background; the restore connects to
 * it through `<work dir>/lazy-pages.socket`). The runtime wrapper (oci.ts) owns the checks; this
 * module owns the processes and when they are ready.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { systemClock } from '../base/clock.js';
import { runtimeError } from './errors.js';
import { pollUntil } from './poll.js';
import { criuLogErrors } from './criu.js';

/**
 * CRIU's page server copies pages through a pipe it sizes to ~3.4 MB (F_SETPIPE_SZ), above the
 * default fs.pipe-max-size (1 MB); without CAP_SYS_RESOURCE (this host) that fails, and CRIU 4.1
 * goes on with a half-made pipe: serving the first page fails with EBADF. Post-copy therefore
 * raises the limit to 4 MB (never lowers it), as dockerd raises ip_forward for its bridges.
 */
function raisePipeMaxSize(): void {
  const f = '/proc/sys/fs/pipe-max-size';
  try {
    if (Number(readFileSync(f, 'utf8')) < 4 << 20) writeFileSync(f, String(4 << 20));
  } catch (e) {
    log.warn('cannot raise fs.pipe-max-size: post-copy page transfers may fail', { err: errorMessage(e) });
  }
}

/** The end of a file (CRIU's log of a large dump runs to megabytes: only its end is news). */
async function tailOf(path: string, n = 8192): Promise<string> {
  const fh = await fsp.open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const { size } = await fh.stat();
    const len = Math.min(n, size);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Waits for `ready`, checked every 2 ms (each ms of it is downtime in a migration); throws `failed()`
 * if the process ends first, or at the deadline.
 */
async function until(
  ready: () => Promise<boolean> | boolean,
  proc: { exitCode: number | null },
  failed: (code: number) => Promise<Error>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const stop = () => proc.exitCode !== null;
  if (await pollUntil(ready, { clock: systemClock, deadlineMs: timeoutMs, everyMs: 2, stop })) return;
  if (proc.exitCode !== null) throw await failed(proc.exitCode);
  throw runtimeError(`${what} did not get ready in ${timeoutMs / 1000} s`);
}

export interface LazyCheckpointOptions {
  runtime: string;
  /** the runtime's --root */
  root: string;
  criu: string;
  env: NodeJS.ProcessEnv;
  id: string;
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  /** ADDRESS:PORT the page server listens on */
  pageServer: string;
  /** how long the dump may take until the page server listens */
  deadlineMs: number;
}

/**
 * Resolves once the dump is complete and the page server listens (CRIU's log says so; runc's
 * `--status-fd` says the same but wants a descriptor it sees as writable, which Node's stdio
 * pipes are not). `served` settles when every page was fetched; `cancel()` ends the server, and
 * the dumped process — stopped, not gone, until then — goes on.
 */
export async function lazyCheckpoint(
  o: LazyCheckpointOptions,
): Promise<{ served: Promise<void>; cancel: () => Promise<void> }> {
  raisePipeMaxSize();
  const args = [
    `--root=${o.root}`,
    `--criu=${o.criu}`,
    'checkpoint',
    '--image-path',
    o.imagePath,
    '--work-path',
    o.workPath,
    '--lazy-pages',
    '--page-server',
    o.pageServer,
    ...(o.tcpEstablished ? ['--tcp-established'] : []),
    o.id,
  ];
  // its own process group: cancelling kills the runtime and CRIU together
  const p = spawn(o.runtime, args, { stdio: ['ignore', 'ignore', 'pipe'], env: o.env, detached: true });
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? -1)));
  const dumpLog = join(o.workPath, 'dump.log');
  const failure = async (code: number) => {
    const tail = await criuLogErrors(dumpLog);
    return runtimeError(`post-copy checkpoint failed (${code}): ${stderr.trim()}${tail ? ` (criu: ${tail})` : ''}`);
  };
  const killGroup = () => {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      /* gone already */
    }
  };
  try {
    await until(
      async () => /Starting page server on port/.test(await tailOf(dumpLog)),
      p,
      failure,
      o.deadlineMs,
      'the page server',
    );
  } catch (e) {
    killGroup();
    throw e;
  }
  let cancelled = false;
  const served = exited.then(async (code) => {
    if (code !== 0 && !cancelled) throw await failure(code);
  });
  served.catch(() => undefined);
  const cancel = async () => {
    cancelled = true;
    killGroup();
    await exited;
  };
  return { served, cancel };
}

/** CRIU's lazy-pages daemon for a restore of `imagePath`; resolves once its socket is there. */
export async function lazyPagesDaemon(o: {
  criu: string;
  env: NodeJS.ProcessEnv;
  imagePath: string;
  workPath: string;
  pageServer: string;
}): Promise<{ done: Promise<void>; cancel: () => void }> {
  raisePipeMaxSize();
  const i = o.pageServer.lastIndexOf(':');
  const socket = join(o.workPath, 'lazy-pages.socket');
  await fsp.rm(socket, { force: true });
  const p = spawn(
    o.criu,
    [
      'lazy-pages',
      '--page-server',
      '--address',
      o.pageServer.slice(0, i),
      '--port',
      o.pageServer.slice(i + 1),
      '--images-dir',
      o.imagePath,
      '--work-dir',
      o.workPath,
      '-o',
      'lazy-pages.log',
      '-v4',
    ],
    { stdio: 'ignore', env: o.env },
  );
  const exited = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? -1)));
  const fail = async (code: number) => {
    const tail = await criuLogErrors(join(o.workPath, 'lazy-pages.log'));
    return runtimeError(`lazy-pages (from ${o.pageServer}) failed (${code})${tail ? `: ${tail}` : ''}`);
  };
  try {
    await until(() => existsSync(socket), p, fail, 10_000, `lazy-pages (page server ${o.pageServer})`);
  } catch (e) {
    p.kill('SIGKILL');
    throw e;
  }
  let cancelled = false;
  const done = exited.then(async (code) => {
    if (code !== 0 && !cancelled) throw await fail(code);
  });
  done.catch(() => undefined);
  return {
    done,
    cancel: () => {
      cancelled = true;
      p.kill('SIGKILL');
    },
  };
}
