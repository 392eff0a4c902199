/**
 * The build runner: a build step's container run to completion with `<runtime> run` in the
 * foreground. No conmon (nothing outlives the step, no attach, no log file): stdout/stderr straight
 * to the builder, stdin /dev/null. An abort kills it through the runtime; its state is deleted
 * whatever happened, under the CLI deadline.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { errorMessage, invalidArgument } from '../base/errors.js';
import type { RuntimeName, SpecInput } from './types.js';
import { buildSpec, cgroupBinds } from './spec.js';
import { makeCgroupDirs, removeCgroupDirs } from './cgroups.js';
import type { RunDir } from './core.js';
import { runtimeError } from './errors.js';

/** How long after a failed kill of an aborted step the kill is tried again (the runtime may not know it yet). */
const KILL_RETRY_MS = 50;

export interface RunOptions {
  id: string;
  bundleDir: string;
  runtime: RuntimeName;
  signal?: AbortSignal;
  onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export async function runToCompletion(d: RunDir, o: RunOptions, spec: SpecInput): Promise<number> {
  if (!d.info.runtimes[o.runtime]) throw invalidArgument(`runtime ${o.runtime} is not installed`);
  o.signal?.throwIfAborted();
  await fsp.writeFile(join(o.bundleDir, 'config.json'), JSON.stringify(buildSpec(spec, d.info, o.runtime)), {
    mode: 0o600,
  });
  const cgroupDirs = cgroupBinds(spec, d.info, o.runtime).map((b) => b.dir);
  makeCgroupDirs(cgroupDirs);
  d.remember(o.id, o.runtime);
  const root = `--root=${d.stateRoot(o.runtime)}`;
  const p = spawn(d.bin(o.runtime), [root, 'run', '--bundle', o.bundleDir, o.id], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: d.env,
  });
  p.stdout.on('data', (c: Buffer) => o.onOutput('stdout', c));
  p.stderr.on('data', (c: Buffer) => o.onOutput('stderr', c));
  // An abort kills the container through the runtime, again until the runtime knows it or `run`
  // ended: an abort while `run` is still creating it must not leave its process behind (killing
  // the runtime's own process would orphan the container's init).
  let exited = false;
  const onAbort = () => {
    if (exited) return;
    d.cliOf(o.runtime, ['kill', o.id, 'KILL']).catch(() => d.clock.setTimeout(onAbort, KILL_RETRY_MS));
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  try {
    return await new Promise<number>((resolve, reject) => {
      p.on('error', (e) => reject(runtimeError(errorMessage(e))));
      p.on('close', (code, sig) => resolve(code ?? 128 + (sig ? (osConstants.signals[sig] ?? 9) : 9)));
    });
  } finally {
    exited = true;
    o.signal?.removeEventListener('abort', onAbort);
    d.forget(o.id);
    if (existsSync(join(d.stateRoot(o.runtime), o.id)))
      await d.cliOf(o.runtime, ['delete', '--force', o.id]).catch(() => undefined);
    removeCgroupDirs(cgroupDirs); // `run` removes them when it ran; not when it failed before
  }
}
