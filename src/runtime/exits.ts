/**
 * What conmon leaves on disk about a process that ended or still runs, read by path so a restarted
 * daemon reconnects: exit files (`exits/<id>`, an exec's `x/<id>/exit/<ctr>`), conmon's pid file.
 * And waiting on one: an exit file is awaited by watching its directory, with a poll as the safety
 * net and a deadline, never by sleeping a fixed time.
 */
import { type FSWatcher, promises as fsp, readFileSync, readdirSync, statSync, watch } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Clock, ClockTimer } from '../base/clock.js';

/** The exit code in an exit file and when it was written, or null (no file, or not a number). */
export function readExitFile(file: string): Promise<{ code: number; at: Date } | null> {
  return Promise.resolve(readExitFileSync(file));
}

/** The same, synchronously: a few bytes under the run dir (through the thread pool it was ~6 round trips per exit). */
export function readExitFileSync(file: string): { code: number; at: Date } | null {
  try {
    const text = readFileSync(file, 'utf8');
    const st = statSync(file);
    const code = Number(text.trim());
    return Number.isFinite(code) ? { code, at: st.mtime } : null;
  } catch {
    return null;
  }
}

/**
 * Resolves with the exit code in `file` once conmon wrote it (its directory watched, polled every
 * `pollMs` in case the watcher misses it), or null when `deadlineMs` passed first.
 */
export function waitForExitFile(file: string, clock: Clock, deadlineMs: number, pollMs = 100): Promise<number | null> {
  return new Promise((resolve) => {
    let done = false;
    let poll: ClockTimer | undefined;
    let watcher: FSWatcher | undefined;
    const finish = (code: number | null) => {
      if (done) return;
      done = true;
      watcher?.close();
      poll?.cancel();
      deadline.cancel();
      resolve(code);
    };
    const check = () =>
      void fsp.readFile(file, 'utf8').then(
        (text) => text.trim() !== '' && Number.isFinite(Number(text.trim())) && finish(Number(text.trim())),
        () => undefined,
      );
    const deadline = clock.setTimeout(() => finish(null), deadlineMs);
    try {
      watcher = watch(dirname(file), (_ev, name) => name?.toString() === basename(file) && check());
      watcher.on('error', () => undefined);
      watcher.unref();
    } catch {
      /* no directory to watch: the poll still answers */
    }
    const tick = () => {
      if (done) return;
      check();
      poll = clock.setTimeout(tick, pollMs);
    };
    tick();
  });
}

/**
 * Calls `cb` with the name of every exit file written in `dir` from now on (a file rewritten with
 * a new mtime counts again). The watcher may coalesce events: a scan every second is the net.
 */
export function watchExitDir(dir: string, cb: (id: string) => void, clock: Clock): void {
  const seen = new Map<string, number>();
  const report = (name: string) => {
    try {
      const m = statSync(join(dir, name)).mtimeMs;
      if (seen.get(name) === m) return;
      seen.set(name, m);
      cb(name);
    } catch {
      seen.delete(name);
    }
  };
  watch(dir, (_ev, name) => name && report(name.toString())).unref();
  const scan = () => {
    for (const name of readdirSync(dir)) report(name);
    clock.setTimeout(scan, 1000);
  };
  clock.setTimeout(scan, 1000);
}

/**
 * Whether the conmon whose pid is in `pidFile` still runs. Two small reads, made synchronously: live
 * restore asks this of every container in a row, and a read through the thread pool (open, stat,
 * read, close: four round trips) cost ~10x the read itself (1,000 containers: 355 ms -> see
 * engine/reconcile.ts). The caller yields to the event loop between batches.
 */
export function conmonAlive(pidFile: string): Promise<boolean> {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    return Promise.resolve(pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('conmon'));
  } catch {
    return Promise.resolve(false);
  }
}
