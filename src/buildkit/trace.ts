/**
 * Progress as BuildKit clients read it: moby.buildkit.v1.StatusResponse messages (vertexes
 * started/completed/cached/failed, and their logs), made from what berth's builder reports
 * (its `Step i/N : ...` lines, command output and finished-step events). dockerd sends each one
 * base64-encoded as `{"id":"moby.buildkit.trace","aux":"..."}` on `POST /build?version=2`.
 *
 * A vertex is one Dockerfile step (digest: sha256 of its position and text, so a rebuild names the
 * same vertexes) or one of the daemon's own phases (`[internal] load build context`). Output is
 * attributed to the step that started last: with stages running concurrently, a line of one stage
 * can be shown under another's step.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import type { BuildOutput, StepEvent } from '../builder/builder.js';
import { encodeStatus, timestamp, type StatusResponse, type Vertex } from './protos.js';

/** Lines of the legacy builder's stream that have no BuildKit counterpart. */
const LEGACY_ONLY = /^( ---> |Successfully built |Successfully tagged |Removing intermediate container )/;
const STEP = /^Step (\d+)\/(\d+) : (.*)$/;

const digestOf = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

export class Trace {
  private readonly open = new Map<string, Vertex>();
  private current: Vertex | null = null;
  private partial = '';
  private stderr = false;
  private readonly byIndex = new Map<number, Vertex>();

  constructor(
    private readonly clock: Clock,
    private readonly emit: (status: Buffer) => void,
  ) {}

  private send(s: Partial<StatusResponse>): void {
    this.emit(encodeStatus({ vertexes: s.vertexes ?? [], logs: s.logs ?? [] }));
  }

  /** Starts a vertex; the returned function completes it (with an error message if it failed). */
  vertex(name: string, inputs: string[] = []): { digest: string; done: (error?: string) => void } {
    const v: Vertex = { digest: digestOf(name), inputs, name, started: timestamp(this.clock.now()) };
    this.open.set(v.digest, v);
    this.send({ vertexes: [v] });
    return { digest: v.digest, done: (error) => this.complete(v, false, error) };
  }

  private complete(v: Vertex, cached: boolean, error?: string): void {
    if (!this.open.delete(v.digest)) return;
    const done: Vertex = { ...v, cached, completed: timestamp(this.clock.now()), ...(error ? { error } : {}) };
    if (this.current === v) this.current = null;
    this.send({ vertexes: [done] });
  }

  /** Marks every vertex still open as failed with `message` (the build failed or was cancelled). */
  fail(message: string): void {
    this.flushPartial();
    for (const v of [...this.open.values()]) this.complete(v, false, message);
  }

  /** Ends the trace of a finished build: what is still open completes. */
  finish(): void {
    this.flushPartial();
    for (const v of [...this.open.values()]) this.complete(v, false);
  }

  /** The builder's output, turned into vertexes and logs. */
  output(): BuildOutput {
    return {
      stream: (text) => this.stream(text),
      step: (e) => this.step(e),
    };
  }

  private stream(text: string): void {
    // dockerd's legacy builder wraps each chunk of a RUN's stderr in red: \x1b[91m ... \x1b[0m
    for (const part of text.split(/(\x1b\[91m|\x1b\[0m)/)) {
      if (part === '\x1b[91m') this.stderr = true;
      else if (part === '\x1b[0m') this.stderr = false;
      else if (part) {
        const lines = (this.partial + part).split('\n');
        this.partial = lines.pop() ?? '';
        for (const l of lines) this.line(l, this.stderr);
      }
    }
  }

  private flushPartial(): void {
    if (this.partial) this.line(this.partial, this.stderr, false);
    this.partial = '';
  }

  private line(l: string, stderr: boolean, newline = true): void {
    if (LEGACY_ONLY.test(l)) return;
    const m = STEP.exec(l);
    if (m) {
      const name = `[${m[1]}/${m[2]}] ${m[3]}`;
      const v: Vertex = { digest: digestOf(name), inputs: [], name, started: timestamp(this.clock.now()) };
      this.byIndex.set(Number(m[1]), v);
      this.open.set(v.digest, v);
      this.current = v;
      this.send({ vertexes: [v] });
      return;
    }
    if (!this.current) return; // the builder's own notes between steps
    const msg = Buffer.from(l + (newline ? '\n' : ''));
    this.send({
      logs: [{ vertex: this.current.digest, timestamp: timestamp(this.clock.now()), stream: stderr ? 2 : 1, msg }],
    });
  }

  private step(e: StepEvent): void {
    const v = this.byIndex.get(e.index);
    if (!v) return;
    this.byIndex.delete(e.index);
    this.complete(v, e.cached);
  }
}
