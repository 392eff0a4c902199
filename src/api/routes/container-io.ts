/** Container stdio routes: attach, logs, resize; and observation: top, stats, changes. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { conflict, invalidArgument, errorMessage } from '../../base/errors.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Engine } from '../../engine/engine.js';
import type { ContainerRecord } from '../../engine/record.js';
import type { AttachSession, CgroupStats } from '../../runtime/types.js';
import { readLogs, parseUnixTime, LogParser, type LogLine } from '../../engine/logs.js';
import { createReadStream, promises as fsp } from 'node:fs';
import { writerFor, parseDetachKeys, DetachFilter, type IoStream } from '../stream.js';

const run = promisify(execFile);
const streamType = (tty: boolean) => (tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');

/**
 * Joins a client connection to an attach session: output to the client (filtered by stream),
 * client input to stdin with detach keys, end of output closes the connection.
 */
export function pipeSession(
  io: IoStream,
  s: AttachSession,
  o: { tty: boolean; stdout: boolean; stderr: boolean; stdin: boolean; stdinOnce: boolean; detachKeys: string; onDetach?: () => void; beforeEnd?: () => Promise<unknown>; log?: { path: string; from: number } },
): void {
  const write = writerFor(io, o.tty);
  const sent = { stdout: 0, stderr: 0 };
  s.onOutput((st, b) => {
    sent[st] += b.length;
    if (st === 'stdout' ? o.stdout : o.stderr) write(st, b);
  });
  // conmon can drop an attach client's last packets when the container exits under load (the
  // log has them all): what the log holds beyond what was sent goes out before the end
  const rest = async () => {
    if (!o.log || io.closed) return;
    const parser = new LogParser();
    const seen = { stdout: 0, stderr: 0 };
    const emit = (l: LogLine) => {
      const b = Buffer.from(l.text);
      const skip = Math.max(0, sent[l.stream] - seen[l.stream]);
      seen[l.stream] += b.length;
      if (skip < b.length && (l.stream === 'stdout' ? o.stdout : o.stderr)) write(l.stream, b.subarray(skip));
    };
    await new Promise<void>((resolve) => {
      const rs = createReadStream(o.log!.path, { start: o.log!.from });
      rs.on('data', (c) => parser.push(c as Buffer, emit));
      rs.on('error', () => resolve());
      rs.on('end', () => resolve());
    });
  };
  // Clients inspect the exit code as soon as the stream ends: it must be known by then.
  s.onEnd(() => void rest().then(() => o.beforeEnd?.()).finally(() => io.end()));
  io.onClose(() => s.close());
  if (!o.stdin || !io.input || !s.stdin) return;
  const stdin = s.stdin;
  const filter = new DetachFilter(parseDetachKeys(o.detachKeys));
  io.input.on('data', (chunk: Buffer) => {
    const { pass, detach } = filter.feed(chunk);
    if (pass.length) stdin.write(pass);
    if (detach) {
      o.onDetach?.();
      s.close();
      io.end();
    }
  });
  io.input.on('end', () => {
    if (o.stdinOnce) s.closeStdin();
  });
}

function logQuery(ctx: Ctx, follow: boolean) {
  const tailRaw = ctx.query.get('tail');
  const tail = tailRaw === null || tailRaw === '' || tailRaw === 'all' ? -1 : Number(tailRaw);
  if (!Number.isInteger(tail) || tail < -1) throw invalidArgument(`invalid value for "tail": ${tailRaw}`);
  return {
    stdout: flag(ctx, 'stdout'),
    stderr: flag(ctx, 'stderr'),
    tail,
    sinceNs: parseUnixTime(ctx.query.get('since')),
    untilNs: parseUnixTime(ctx.query.get('until')),
    timestamps: flag(ctx, 'timestamps'),
    follow,
  };
}

export function containerIoRoutes(r: Router, engine: Engine): void {
  r.on('POST', '/containers/{id}/attach', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const tty = c.config.Tty ?? false;
    const o = { tty, stdout: flag(ctx, 'stdout'), stderr: flag(ctx, 'stderr'), stdin: flag(ctx, 'stdin'), stdinOnce: c.config.StdinOnce ?? false, detachKeys: ctx.query.get('detachKeys') ?? '' };
    if (o.detachKeys) parseDetachKeys(o.detachKeys);
    if (c.state.status === 'dead' || c.state.status === 'removing') throw conflict(`You cannot attach to a stopped container, start it first`);
    const io = ctx.hijack(streamType(tty));
    if (flag(ctx, 'logs')) {
      const write = writerFor(io, tty);
      await readLogs(engine.logPathOf(c.id), { ...logQuery(ctx, false), stdout: o.stdout, stderr: o.stderr, tail: -1 }, (l) => write(l.stream, Buffer.from(l.text)), () => false, ctx.signal, () => io.drain());
    }
    if (!flag(ctx, 'stream')) {
      io.end();
      return;
    }
    const logPath = engine.logPathOf(c.id);
    const logFrom = await fsp.stat(logPath).then((st) => st.size, () => 0);
    const { session, cancel } = engine.lifecycle.attach(c, { stdin: o.stdin });
    io.onClose(cancel);
    let s: AttachSession;
    try {
      s = await session;
    } catch {
      io.end();
      return;
    }
    if (io.closed) {
      s.close();
      return;
    }
    engine.events.emit('container', 'attach', c.id, { image: c.config.Image ?? '', name: c.name });
    pipeSession(io, s, { ...o, log: { path: logPath, from: logFrom }, onDetach: () => engine.events.emit('container', 'detach', c.id, { image: c.config.Image ?? '', name: c.name }) });
  });

  r.on('GET', '/containers/{id}/logs', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const q = logQuery(ctx, flag(ctx, 'follow'));
    if (!q.stdout && !q.stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
    const tty = c.config.Tty ?? false;
    const io = ctx.stream(200, streamType(tty));
    const write = writerFor(io, tty);
    const alive = () => {
      const cur = engine.store.find(c.id);
      return !!cur && ['running', 'paused', 'restarting', 'created'].includes(cur.state.status);
    };
    await readLogs(engine.logPathOf(c.id), q, (l) => write(l.stream, Buffer.from(q.timestamps ? `${l.time} ${l.text}` : l.text)), alive, ctx.signal, () => io.drain());
    io.end();
  });

  r.on('POST', '/containers/{id}/resize', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const h = Number(ctx.query.get('h') ?? 0);
    const w = Number(ctx.query.get('w') ?? 0);
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0) throw invalidArgument('invalid resize parameters');
    if (c.state.status !== 'running' && c.state.status !== 'paused') throw conflict(`Container ${c.id} is not running`);
    await engine.runtime.resize(c.id, h, w);
    ctx.send(200);
  });

  r.on('GET', '/containers/{id}/top', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    if (c.state.status !== 'running' && c.state.status !== 'paused') throw conflict(`Container ${c.id} is not running`);
    ctx.send(200, await top(engine, c, ctx.query.get('ps_args') || '-ef'));
  });

  r.on('GET', '/containers/{id}/stats', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const stream = ctx.query.get('stream') === null ? true : flag(ctx, 'stream');
    const oneShot = flag(ctx, 'one-shot');
    const io = ctx.stream(200, 'application/json');
    let prev: { at: string; s: CgroupStats } | null = null;
    const sample = async () => {
      const cur = engine.store.find(c.id);
      if (!cur || (cur.state.status !== 'running' && cur.state.status !== 'paused')) return null;
      return { at: new Date().toISOString(), s: await engine.runtime.stats(c.id).catch(() => null) };
    };
    if (!stream && !oneShot) {
      const a = await sample();
      await sleep(250);
      prev = a?.s ? { at: a.at, s: a.s } : null;
    }
    for (;;) {
      const cur = await sample();
      const doc = statsDoc(c, cur?.s ? { at: cur.at, s: cur.s } : null, prev);
      io.write(Buffer.from(JSON.stringify(doc) + '\n'));
      if (!stream || !cur || ctx.signal.aborted) break;
      prev = cur.s ? { at: cur.at, s: cur.s } : null;
      await sleep(1000);
      if (ctx.signal.aborted) break;
    }
    io.end();
  });

  r.on('GET', '/containers/{id}/changes', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const changes = await engine.snapshots.diff(c.id);
    ctx.send(200, changes.length ? changes : null);
  });
}

function cpuDoc(s: CgroupStats | undefined) {
  return {
    cpu_usage: { total_usage: s?.cpuTotalNs ?? 0, percpu_usage: s?.perCpuNs ?? [], usage_in_kernelmode: s?.cpuSystemNs ?? 0, usage_in_usermode: s?.cpuUserNs ?? 0 },
    system_cpu_usage: s?.systemCpuNs ?? 0,
    online_cpus: s?.onlineCpus ?? 0,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  };
}

/** One entry of GET /containers/{id}/stats in Docker's shape. */
function statsDoc(c: ContainerRecord, cur: { at: string; s: CgroupStats } | null, prev: { at: string; s: CgroupStats } | null) {
  const s = cur?.s;
  return {
    read: cur?.at ?? '0001-01-01T00:00:00Z',
    preread: prev?.at ?? '0001-01-01T00:00:00Z',
    pids_stats: s ? { current: s.pids, limit: s.pidsLimit } : {},
    blkio_stats: {
      io_service_bytes_recursive: s ? [{ major: 0, minor: 0, op: 'read', value: s.blkioRead }, { major: 0, minor: 0, op: 'write', value: s.blkioWrite }] : null,
      io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuDoc(s),
    precpu_stats: cpuDoc(prev?.s),
    memory_stats: s ? { usage: s.memUsage, stats: s.memStats, limit: s.memLimit } : {},
    name: `/${c.name}`,
    id: c.id,
  };
}

/** `docker top`: the host's `ps` output, reduced to the container's processes (as dockerd does). */
async function top(engine: Engine, c: ContainerRecord, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
  const pids = new Set((await engine.runtime.pids(c.id)).map(String));
  const args = psArgs.split(/\s+/).filter(Boolean);
  let out: string;
  try {
    out = (await run('ps', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (e) {
    throw invalidArgument(`Error running ps: ${errorMessage(e)}`);
  }
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const titles = (lines[0] ?? '').trim().split(/\s+/);
  const pidCol = titles.indexOf('PID');
  if (pidCol < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
  const processes: string[][] = [];
  for (const l of lines.slice(1)) {
    const fields = l.trim().split(/\s+/);
    if (!pids.has(fields[pidCol] ?? '')) continue;
    processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
  }
  return { Titles: titles, Processes: processes };
}
