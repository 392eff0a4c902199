/** Container stdio routes: attach, logs, resize; and observation: top, stats, changes. */
import { errorMessage, invalidArgument } from '../../base/errors.js';
import { log } from '../../base/log.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Verbs } from '../../engine/verbs.js';
import type { AttachSession, CgroupStats, NetDevStats } from '../../engine/container-stdio.js';
import { parseUnixTime, LogParser, type LogLine } from '../../engine/logs.js';
import { createReadStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { writerFor, parseDetachKeys, DetachFilter, type IoStream } from '../stream.js';

const streamType = (tty: boolean) =>
  tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream';

/**
 * Joins a client connection to an attach session: output to the client (filtered by stream),
 * client input to stdin with detach keys, end of output closes the connection.
 */
export function pipeSession(
  io: IoStream,
  s: AttachSession,
  o: {
    tty: boolean;
    stdout: boolean;
    stderr: boolean;
    stdin: boolean;
    stdinOnce: boolean;
    detachKeys: string;
    onDetach?: () => void;
    beforeEnd?: () => Promise<unknown>;
    log?: { path: string; from: number };
  },
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
      rs.on('end', () => {
        parser.flush(emit); // the last output had no newline
        resolve();
      });
    });
  };
  // Clients inspect the exit code as soon as the stream ends: it must be known by then.
  s.onEnd(
    () =>
      void rest()
        .then(() => o.beforeEnd?.())
        .finally(() => io.end()),
  );
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
  // dockerd reads tail with strconv.Atoi and takes anything else ("all", "1.5", "abc") or a
  // negative number as every line (20.10 answered all lines to ?tail=abc, -5, 1.5, ALL)
  const tailRaw = ctx.query.get('tail') ?? '';
  const tail = /^[+-]?\d{1,15}$/.test(tailRaw) ? Math.max(-1, Number(tailRaw)) : -1;
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

export function containerIoRoutes(r: Router, v: Verbs): void {
  const stdio = v.stdio;

  r.on('POST', '/containers/{id}/attach', async (ctx) => {
    const o = {
      stdout: flag(ctx, 'stdout'),
      stderr: flag(ctx, 'stderr'),
      stdin: flag(ctx, 'stdin'),
      detachKeys: ctx.query.get('detachKeys') ?? '',
    };
    // 400 now, not a cut stream later; before the container is looked up, as dockerd checks them
    if (o.detachKeys) parseDetachKeys(o.detachKeys);
    const a = stdio.attach(ctx.params[0]!);
    const io = ctx.hijack(streamType(a.tty));
    const write = writerFor(io, a.tty);
    if (flag(ctx, 'logs'))
      await a.replay(
        { ...logQuery(ctx, false), stdout: o.stdout, stderr: o.stderr },
        (l) => write(l.stream, Buffer.from(l.text)),
        ctx.signal,
        () => io.drain(),
      );
    if (!flag(ctx, 'stream')) {
      io.end();
      return;
    }
    const { session, cancel, deferred, logFrom } = a.connect(o.stdin);
    io.onClose(cancel);
    let s: AttachSession;
    try {
      s = await session;
    } catch (e) {
      // not a silent EOF: logged, and told to the client in the stream (the 101 went out already).
      // A session deferred to a start fails with that start, whose request reports it.
      log.warn('attach failed', { id: a.id, err: errorMessage(e) });
      if (!deferred) write('stderr', Buffer.from(`Error attaching to container ${a.name}: ${errorMessage(e)}\r\n`));
      io.end();
      return;
    }
    if (io.closed) {
      s.close();
      return;
    }
    a.attached();
    pipeSession(io, s, {
      ...o,
      tty: a.tty,
      stdinOnce: a.stdinOnce,
      log: { path: a.logPath, from: await logFrom },
      onDetach: () => a.detached(),
    });
  });

  r.on('GET', '/containers/{id}/logs', async (ctx) => {
    const q = logQuery(ctx, flag(ctx, 'follow'));
    const logs = stdio.logs(ctx.params[0]!, q);
    const io = ctx.stream(200, streamType(logs.tty));
    const write = writerFor(io, logs.tty);
    await logs.read(
      (l) => write(l.stream, Buffer.from(q.timestamps ? `${l.time} ${l.text}` : l.text)),
      ctx.signal,
      () => io.drain(),
    );
    io.end();
  });

  r.on('POST', '/containers/{id}/resize', async (ctx) => {
    const h = Number(ctx.query.get('h') ?? 0);
    const w = Number(ctx.query.get('w') ?? 0);
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0)
      throw invalidArgument('invalid resize parameters');
    await stdio.resize(ctx.params[0]!, h, w);
    ctx.send(200);
  });

  r.on('GET', '/containers/{id}/top', async (ctx) =>
    ctx.send(200, await stdio.top(ctx.params[0]!, ctx.query.get('ps_args') || '-ef')),
  );

  r.on('GET', '/containers/{id}/stats', async (ctx) => {
    const { rec: c, sample } = stdio.stats(ctx.params[0]!);
    const stream = ctx.query.get('stream') === null ? true : flag(ctx, 'stream');
    const oneShot = flag(ctx, 'one-shot');
    const io = ctx.stream(200, 'application/json');
    type Taken = { at: string; s: CgroupStats; networks: Record<string, NetDevStats> | null };
    const taken = (x: Awaited<ReturnType<typeof sample>>): Taken | null =>
      typeof x === 'object' && x.s ? { ...x, s: x.s } : null;
    let prev: Taken | null = null;
    if (!stream && !oneShot) {
      prev = taken(await sample());
      await sleep(250);
    }
    // dockerd 20.10 streams a stopped container's zero document every second (and real ones once
    // it runs again); the stream ends when the client goes or the container is removed
    for (;;) {
      const x = await sample();
      const cur = taken(x);
      io.write(Buffer.from(JSON.stringify(statsDoc(c, cur, prev)) + '\n'));
      if (!stream || x === 'removed' || ctx.signal.aborted) break;
      prev = cur;
      await sleep(1000);
      if (ctx.signal.aborted) break;
    }
    io.end();
  });

  r.on('GET', '/containers/{id}/changes', async (ctx) => {
    const changes = await v.containers.changes(ctx.params[0]!);
    ctx.send(200, changes.length ? changes : null);
  });
}

/**
 * cpu_stats / precpu_stats as dockerd 20.10 writes them: percpu_usage (cgroup v1 only),
 * system_cpu_usage and online_cpus are left out when empty or 0 (Go's omitempty), so a
 * one-shot's precpu_stats is {"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,
 * "usage_in_usermode":0},"throttling_data":{...0}}.
 */
function cpuDoc(s: CgroupStats | undefined) {
  return {
    cpu_usage: {
      total_usage: s?.cpuTotalNs ?? 0,
      ...(s?.perCpuNs.length ? { percpu_usage: s.perCpuNs } : {}),
      usage_in_kernelmode: s?.cpuSystemNs ?? 0,
      usage_in_usermode: s?.cpuUserNs ?? 0,
    },
    ...(s?.systemCpuNs ? { system_cpu_usage: s.systemCpuNs } : {}),
    ...(s?.onlineCpus ? { online_cpus: s.onlineCpus } : {}),
    throttling_data: {
      periods: s?.throttling.periods ?? 0,
      throttled_periods: s?.throttling.throttledPeriods ?? 0,
      throttled_time: s?.throttling.throttledTimeNs ?? 0,
    },
  };
}

const NO_BLKIO = {
  io_service_bytes_recursive: null,
  io_serviced_recursive: null,
  io_queue_recursive: null,
  io_service_time_recursive: null,
  io_wait_time_recursive: null,
  io_merged_recursive: null,
  io_time_recursive: null,
  sectors_recursive: null,
};

/**
 * One entry of GET /containers/{id}/stats in dockerd 20.10's shape and key order (compared on
 * cgroup v1 with `docker run --network <bridge> busybox sleep`): pids_stats.limit only when
 * set, memory_stats' max_usage/failcnt only when not 0 (v1), blkio_stats per device as the
 * cgroup has them, `networks` per interface of the container's namespace (left out for none
 * and host), and for a container that does not run: zero times, `{}` for pids and memory.
 */
function statsDoc(
  c: { id: string; name: string },
  cur: { at: string; s: CgroupStats; networks: Record<string, NetDevStats> | null } | null,
  prev: { at: string; s: CgroupStats } | null,
) {
  const s = cur?.s;
  return {
    read: cur?.at ?? '0001-01-01T00:00:00Z',
    preread: prev?.at ?? '0001-01-01T00:00:00Z',
    pids_stats: s ? { ...(s.pids ? { current: s.pids } : {}), ...(s.pidsLimit ? { limit: s.pidsLimit } : {}) } : {},
    blkio_stats: s ? s.blkio : NO_BLKIO,
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuDoc(s),
    precpu_stats: cpuDoc(prev?.s),
    memory_stats: s
      ? {
          usage: s.memUsage,
          ...(s.memMaxUsage ? { max_usage: s.memMaxUsage } : {}),
          stats: s.memStats,
          ...(s.memFailcnt ? { failcnt: s.memFailcnt } : {}),
          limit: s.memLimit,
        }
      : {},
    name: `/${c.name}`,
    id: c.id,
    ...(cur?.networks ? { networks: cur.networks } : {}),
  };
}
