/**
 * A build's output in dockerd's order. berth runs independent stages at once, but dockerd's legacy
 * builder runs them one after the other, so its stream holds each stage's lines together, in
 * Dockerfile order. Each stage runs inside `inStage()`; what it writes while an earlier stage is
 * still running is held back and written when those are done. Also keeps, per stage, the
 * intermediate container dockerd would have made for the current step (`Running in <id>`), for the
 * `Removing intermediate container <id>` line that `rm`/`forcerm` print.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type { BuildOutput, PullProgress, StepEvent } from './types.js';

interface Slot {
  index: number;
  /** the intermediate container of the step in progress (a name only: berth makes no container) */
  container: string | null;
  /** running ONBUILD triggers: dockerd shows no " ---> <id>" per trigger */
  hideIds: boolean;
}

/** what a build holds back of later stages' output at most */
const HOLD = 8 << 20;

export class OrderedOutput implements BuildOutput {
  private readonly als = new AsyncLocalStorage<Slot>();
  private order: number[] = [];
  private pos = 0;
  private readonly held = new Map<number, Array<{ f: () => void; size: number }>>();
  private readonly done = new Set<number>();
  private heldBytes = 0;

  constructor(
    private readonly out: BuildOutput,
    /** rm: remove the intermediate containers after a successful step; forcerm: after any step */
    private readonly remove: { rm: boolean; force: boolean },
  ) {}

  /** The stages in the order their output is written (ascending Dockerfile index). */
  setOrder(stages: number[]): void {
    this.order = [...stages].sort((a, b) => a - b);
    this.pos = 0;
  }

  inStage<T>(index: number, fn: () => Promise<T>): Promise<T> {
    return this.als.run({ index, container: null, hideIds: false }, fn);
  }

  private emit(f: () => void, size: number): void {
    const s = this.als.getStore();
    if (!s || this.pos >= this.order.length || this.order[this.pos] === s.index) return f();
    // memory is bounded: past HOLD bytes a later stage's output goes out at once, out of order
    if (this.heldBytes + size > HOLD) return f();
    this.heldBytes += size;
    let q = this.held.get(s.index);
    if (!q) this.held.set(s.index, (q = []));
    q.push({ f, size });
  }

  stream(text: string): void {
    this.emit(() => this.out.stream(text), text.length);
  }

  aux(id: string): void {
    this.emit(() => this.out.aux?.(id), id.length);
  }

  /** A pull's progress message: as is when the output takes them, else its status as a line. */
  progress(m: PullProgress): void {
    this.emit(() => {
      if (this.out.progress) this.out.progress(m);
      else if (m.status && !m.progressDetail?.total) this.out.stream(`${m.id ? `${m.id}: ` : ''}${m.status}\n`);
    }, 200);
  }

  /** berth's step events are not part of dockerd's stream: they go out at once */
  step(e: StepEvent): void {
    this.out.step(e);
  }

  /** A stage is finished: the next stages' held lines are written. */
  finished(index: number): void {
    this.done.add(index);
    while (this.pos < this.order.length && this.done.has(this.order[this.pos]!)) {
      this.pos++;
      const next = this.order[this.pos];
      if (next !== undefined) this.flush(next);
    }
  }

  /**
   * The build failed in stage `failed` (-1: unknown): what the stages up to it wrote is written, in
   * stage order; the later stages, which dockerd would not have started, are dropped.
   */
  flushAll(failed = -1): void {
    for (const i of this.order) if (failed < 0 || i <= failed) this.flush(i);
    this.held.clear();
    this.heldBytes = 0;
    this.pos = this.order.length;
  }

  private flush(index: number): void {
    const q = this.held.get(index);
    this.held.delete(index);
    for (const { f, size } of q ?? []) {
      this.heldBytes -= size;
      f();
    }
  }

  /** A step's resulting image (` ---> <id>`), not shown for ONBUILD triggers. */
  result(text: string): void {
    if (!this.als.getStore()?.hideIds) this.stream(text);
  }

  hideIds(on: boolean): void {
    const s = this.als.getStore();
    if (s) s.hideIds = on;
  }

  /** dockerd made a container for this step: ` ---> Running in <id>`. */
  running(): void {
    const s = this.als.getStore();
    const id = randomBytes(6).toString('hex');
    if (s) s.container = id;
    this.stream(` ---> Running in ${id}\n`);
  }

  /** The step ended: with rm (and success) or forcerm, dockerd removes its container and says so. */
  stepEnded(ok: boolean): void {
    const s = this.als.getStore();
    if (!s?.container) return;
    if (this.remove.force || (ok && this.remove.rm)) this.stream(`Removing intermediate container ${s.container}\n`);
    s.container = null;
  }
}
