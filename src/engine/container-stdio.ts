/**
 * A container's stdio and observation verbs: attach, logs, resize, top, stats. The framing of
 * the bytes is the front door's; which state allows what, the events and the processes spawned
 * (`ps`, with a deadline) are here.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { conflict, errorMessage, invalidArgument, notImplemented } from '../base/errors.js';
import { dateOf, type Clock } from '../base/clock.js';
import type { AttachSession, CgroupStats } from '../runtime/types.js';
import { readLogs, type LogLine, type LogQuery } from './logs.js';
import { can, isActive } from './state.js';
import type { ContainerRecord } from './record.js';
import type { Engine } from './engine.js';
import { actorOf } from './actor.js';

export type { AttachSession, CgroupStats, LogLine, LogQuery };

const run = promisify(execFile);
/** `docker top`'s `ps` gets this long (dockerd has none; a stuck /proc read must not hold the request). */
const PS_DEADLINE_MS = 30_000;

/** A client's attachment to a container, between the checks and the end of the stream. */
export interface Attachment {
  id: string;
  name: string;
  tty: boolean;
  stdinOnce: boolean;
  /** conmon's log: output the attach session dropped at the end is resent from it */
  logPath: string;
  /** `logs=1`: what the container wrote so far */
  replay(
    q: LogQuery,
    emit: (l: LogLine) => void,
    signal: AbortSignal,
    backpressure: () => Promise<void> | null,
  ): Promise<void>;
  /**
   * The session: now for a running container, else at its next start (no output lost).
   * `deferred`: the session waits for a start, whose request reports a failure.
   */
  connect(stdin: boolean): {
    session: Promise<AttachSession>;
    cancel: () => void;
    deferred: boolean;
    logFrom: Promise<number>;
  };
  /** The client is attached (the `attach` event). */
  attached(): void;
  /** The client typed the detach keys (the `detach` event). */
  detached(): void;
}

/** One interface's counters in the container's network namespace (stats' `networks`). */
export interface NetDevStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

/**
 * One sample of GET /containers/{id}/stats (`not-running`: dockerd then sends a zero document,
 * and a stream goes on until the container runs again or is removed). `networks`:
 * per interface, null when it has none of its own (`--network none` or `host`: dockerd leaves
 * the field out there).
 */
export type StatsSample =
  { at: string; s: CgroupStats | null; networks: Record<string, NetDevStats> | null } | 'not-running' | 'removed';

/** The kernel's fallback tunnel devices a fresh namespace can have: never a container's endpoint. */
const TUNNEL_DEVICES = new Set([
  'tunl0',
  'sit0',
  'ip6tnl0',
  'ip6gre0',
  'gre0',
  'gretap0',
  'erspan0',
  'ip_vti0',
  'ip6_vti0',
]);

/**
 * `/proc/<pid>/net/dev`: the counters of the namespace `pid` is in (the container's, or the one
 * it joined with `--network container:`), lo left out as dockerd does.
 */
export function parseNetDev(text: string): Record<string, NetDevStats> {
  const out: Record<string, NetDevStats> = {};
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (!name || name === 'lo' || TUNNEL_DEVICES.has(name)) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map((x) => Number(x) || 0);
    out[name] = {
      rx_bytes: f[0] ?? 0,
      rx_packets: f[1] ?? 0,
      rx_errors: f[2] ?? 0,
      rx_dropped: f[3] ?? 0,
      tx_bytes: f[8] ?? 0,
      tx_packets: f[9] ?? 0,
      tx_errors: f[10] ?? 0,
      tx_dropped: f[11] ?? 0,
    };
  }
  return out;
}

export class ContainerStdio {
  constructor(
    private readonly e: Engine,
    private readonly clock: Clock,
  ) {}

  /** Attach (POST /containers/{id}/attach): refused for a removed or dead container. */
  attach(ref: string): Attachment {
    const c = this.e.get(ref);
    if (!can(c.state.status, 'attach')) throw conflict(`You cannot attach to a stopped container, start it first`);
    const attrs = actorOf(c);
    const logPath = this.e.logPathOf(c.id);
    return {
      id: c.id,
      name: c.name,
      tty: c.config.Tty ?? false,
      stdinOnce: c.config.StdinOnce ?? false,
      logPath,
      replay: (q, emit, signal, backpressure) =>
        readLogs(logPath, { ...q, follow: false, tail: -1 }, emit, () => false, signal, backpressure),
      connect: (stdin) => {
        const logFrom = fsp.stat(logPath).then(
          (st) => st.size,
          () => 0,
        );
        const deferred = c.state.status !== 'running' && c.state.status !== 'paused';
        return { ...this.e.lifecycle.attach(c, { stdin }), deferred, logFrom };
      },
      attached: () => this.e.events.emit('container', 'attach', c.id, attrs),
      detached: () => this.e.events.emit('container', 'detach', c.id, attrs),
    };
  }

  /** GET /containers/{id}/logs: `tty` for the framing, `read` follows while the container may still write. */
  logs(
    ref: string,
    q: LogQuery,
  ): {
    tty: boolean;
    read: (emit: (l: LogLine) => void, signal: AbortSignal, backpressure: () => Promise<void> | null) => Promise<void>;
  } {
    const c = this.e.get(ref);
    if (!q.stdout && !q.stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
    // dockerd 20.10 for --log-driver none: 501 {"message":"configured logging driver does not support reading"}
    if (c.hostConfig.LogConfig?.Type === 'none')
      throw notImplemented('configured logging driver does not support reading');
    const alive = () => {
      const cur = this.e.store.find(c.id);
      return !!cur && (isActive(cur.state.status) || cur.state.status === 'created');
    };
    return {
      tty: c.config.Tty ?? false,
      read: (emit, signal, bp) => readLogs(this.e.logPathOf(c.id), q, emit, alive, signal, bp),
    };
  }

  async resize(ref: string, h: number, w: number): Promise<void> {
    const c = this.e.get(ref);
    this.e.check(c, 'resize');
    await this.e.runtime.resize(c.id, h, w);
    // dockerd 20.10: "resize" {"foo":"bar","height":"10","image":"busybox","name":"ev","width":"20"}
    this.e.events.emit('container', 'resize', c.id, actorOf(c, { height: String(h), width: String(w) }));
  }

  /** `docker top`: the host's `ps` output, reduced to the container's processes (as dockerd does). */
  async top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const c = this.e.get(ref);
    this.e.check(c, 'top');
    const pids = new Set((await this.e.runtime.pids(c.id)).map(String));
    const args = psArgs.split(/\s+/).filter(Boolean);
    let out: string;
    try {
      out = (await run('ps', args, { maxBuffer: 16 * 1024 * 1024, timeout: PS_DEADLINE_MS, killSignal: 'SIGKILL' }))
        .stdout;
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
    this.e.events.emit('container', 'top', c.id, actorOf(c)); // dockerd 20.10 emits it for every `docker top`
    return { Titles: titles, Processes: processes };
  }

  /** GET /containers/{id}/stats: the container, and a sampler of its cgroup (null once it stopped). */
  stats(ref: string): { rec: Pick<ContainerRecord, 'id' | 'name'>; sample: () => Promise<StatsSample> } {
    const c = this.e.get(ref);
    const sample = async (): Promise<StatsSample> => {
      const cur = this.e.store.find(c.id);
      if (!cur) return 'removed';
      if (cur.state.status !== 'running' && cur.state.status !== 'paused') return 'not-running';
      const at = dateOf(this.clock).toISOString();
      const [s, networks] = await Promise.all([
        this.e.runtime.stats(c.id).catch(() => null),
        cur.hostConfig.NetworkMode === 'host' || !cur.state.pid
          ? null
          : fsp.readFile(`/proc/${cur.state.pid}/net/dev`, 'utf8').then(parseNetDev, () => null),
      ]);
      return { at, s, networks: networks && Object.keys(networks).length ? networks : null };
    };
    return { rec: { id: c.id, name: c.name }, sample };
  }
}
