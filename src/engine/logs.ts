/**
 * Reads a container's k8s-file log (written by conmon: `<RFC3339Nano> <stdout|stderr> <P|F> <text>`)
 * for GET /containers/{id}/logs: stdout and stderr kept apart, tail, since/until, timestamps, follow.
 */
import { createReadStream, promises as fsp, watch } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string; // with trailing newline when the line was complete
}

export interface LogQuery {
  stdout: boolean;
  stderr: boolean;
  tail: number; // -1 = all
  sinceNs: bigint; // 0 = from the start
  untilNs: bigint; // 0 = no end
  timestamps: boolean;
  follow: boolean;
}

/** RFC 3339 with nanoseconds -> ns since the epoch. */
export function timeToNs(t: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return 0n;
  const base = BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n;
  const frac = BigInt(((m[2] ?? '') + '000000000').slice(0, 9));
  return base + frac;
}

/** ns since the epoch -> RFC 3339 in UTC with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano). */
export function nsToTime(ns: bigint): string {
  const secs = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${new Date(Number(secs) * 1000).toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

/** Docker's `since`/`until` query values: unix seconds with optional fraction. */
export function parseUnixTime(v: string | null): bigint {
  if (!v) return 0n;
  const [s = '0', f = ''] = v.split('.');
  if (!/^\d+$/.test(s)) return 0n;
  return BigInt(s) * 1_000_000_000n + BigInt((f + '000000000').slice(0, 9));
}

/** Parses k8s-file content into complete lines, joining partial (P) records. */
export class LogParser {
  private partial: LogLine | null = null;
  private rest = '';
  private readonly decoder = new StringDecoder('utf8');

  push(chunk: Buffer, out: (l: LogLine) => void): void {
    const text = this.rest + this.decoder.write(chunk);
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const raw of lines) {
      const a = raw.indexOf(' ');
      const b = raw.indexOf(' ', a + 1);
      const c = raw.indexOf(' ', b + 1);
      if (a < 0 || b < 0) continue;
      const time = nsToTime(timeToNs(raw.slice(0, a)));
      const stream = raw.slice(a + 1, b) === 'stderr' ? 'stderr' : 'stdout';
      const flag = c < 0 ? raw.slice(b + 1) : raw.slice(b + 1, c);
      const content = c < 0 ? '' : raw.slice(c + 1);
      if (flag === 'P') {
        if (this.partial && this.partial.stream === stream) this.partial.text += content;
        else this.partial = { time, stream, text: content };
        continue;
      }
      const line: LogLine =
        this.partial && this.partial.stream === stream
          ? { time: this.partial.time, stream, text: this.partial.text + content + '\n' }
          : { time, stream, text: content + '\n' };
      this.partial = null;
      out(line);
    }
  }

  /**
   * The output after the last newline (a `P` record nothing completed): emitted as it is, without
   * a newline, once nothing more will come (dockerd 20.10 showed `printf no-newline`'s text last
   * in `docker logs`; berth dropped it).
   */
  flush(out: (l: LogLine) => void): void {
    const p = this.partial;
    this.partial = null;
    if (p && p.text) out(p);
  }
}

function wanted(q: LogQuery, l: LogLine): boolean {
  if (l.stream === 'stdout' ? !q.stdout : !q.stderr) return false;
  if (q.sinceNs === 0n && q.untilNs === 0n) return true;
  const t = timeToNs(l.time);
  return t >= q.sinceNs && (q.untilNs === 0n || t <= q.untilNs);
}

/**
 * Emits the log's lines per `q`. With `follow`, keeps emitting new lines until `stillRunning()`
 * turns false and the file is drained, or `signal` aborts. `backpressure()` (the reader's
 * `drain()`) is asked after each chunk: a promise pauses reading until it settles, so a slow
 * reader of a large log holds one chunk in memory, not the file.
 */
export async function readLogs(
  path: string,
  q: LogQuery,
  emit: (l: LogLine) => void,
  stillRunning: () => boolean,
  signal: AbortSignal,
  backpressure: () => Promise<void> | null = () => null,
): Promise<void> {
  const parser = new LogParser();
  let offset = 0;
  const collected: LogLine[] = [];
  const sink =
    q.tail >= 0
      ? (l: LogLine) => {
          if (wanted(q, l)) {
            collected.push(l);
            if (collected.length > q.tail) collected.shift();
          }
        }
      : (l: LogLine) => {
          if (wanted(q, l)) emit(l);
        };
  const readMore = async (onLine: (l: LogLine) => void): Promise<void> => {
    let size: number;
    try {
      size = (await fsp.stat(path)).size;
    } catch {
      return;
    }
    if (size < offset) offset = 0; // truncated
    if (size === offset) return;
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(path, { start: offset, end: size - 1 });
      s.on('data', (c) => {
        parser.push(c as Buffer, onLine);
        const wait = signal.aborted ? null : backpressure();
        if (wait) {
          s.pause();
          void wait.then(() => s.resume());
        }
      });
      s.on('end', resolve);
      s.on('error', reject);
    });
    offset = size;
  };
  await readMore(sink);
  // a follow of a running container keeps a trailing partial line until it is completed or it exits
  if (!q.follow || !stillRunning()) parser.flush(sink);
  if (q.tail >= 0) for (const l of collected) emit(l);
  if (!q.follow) return;
  const onLine = (l: LogLine) => {
    if (wanted(q, l)) emit(l);
  };
  let wake: (() => void) | null = null;
  let watcher: ReturnType<typeof watch> | null = null;
  try {
    watcher = watch(path, () => wake?.());
  } catch {
    watcher = null;
  }
  try {
    while (!signal.aborted) {
      await readMore(onLine);
      if (!stillRunning()) {
        await readMore(onLine);
        parser.flush(onLine);
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        const t = setTimeout(resolve, 250);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
      wake = null;
    }
  } finally {
    watcher?.close();
  }
}
