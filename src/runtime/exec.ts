/**
 * Exec: a process run in a running container through conmon (`--exec --exec-attach`), so it gets
 * the container's stdio handling, TTYs and exit codes. The process spec is the container's own
 * (capabilities, no_new_privs, rlimits from its config.json) with the exec's args, env, user and cwd.
 *   <runDir>/x/<exec id[:12]>/  process.json, pid, exit/<container id>, log (kept a second after it ends)
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, notFound } from '../base/errors.js';
import { newId } from '../base/ids.js';
import type { AttachSession, ExecHandle, ExecOptions, HostInfo } from './types.js';
import { connectAttach } from './attach.js';
import { startConmon, type SyncMessage } from './conmon.js';
import { type RunDir, short } from './core.js';
import { runtimeError } from './errors.js';
import { waitForExitFile } from './exits.js';
import { resizeVia } from './task.js';

/** How long an exec's log and exit file stay after it ended (the engine reads the log then). */
const KEEP_MS = 1000;
/** How long conmon's exit file may trail its exit report (or a closed sync pipe). */
const EXIT_FILE_DEADLINE_MS = 5000;
/** How long conmon's stderr may trail a failure on its sync pipe (its words for the error). */
const STDERR_DEADLINE_MS = 1000;

/** The OCI process spec of an exec: the container's confinement, the exec's command and identity. */
export function execProcessSpec(info: HostInfo, containerProcess: Record<string, unknown> | undefined, o: ExecOptions) {
  const all = info.capabilities;
  const caps = o.privileged ? { bounding: all, effective: all, permitted: all } : containerProcess?.['capabilities'];
  const user = o.user;
  return {
    terminal: o.tty,
    user: {
      uid: user.uid,
      gid: user.gid,
      ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}),
    },
    args: o.args,
    env: o.env,
    cwd: o.cwd || '/',
    capabilities: caps,
    noNewPrivileges: containerProcess?.['noNewPrivileges'] ?? false,
    ...(containerProcess?.['rlimits'] ? { rlimits: containerProcess['rlimits'] } : {}),
  };
}

export async function execIn(d: RunDir, id: string, o: ExecOptions): Promise<ExecHandle> {
  const bundleLink = join(d.sockets, short(id));
  const bundle = await fsp.realpath(bundleLink).catch(() => {
    throw notFound(`container ${id} has no running monitor`);
  });
  const cfg = JSON.parse(await fsp.readFile(join(bundle, 'config.json'), 'utf8')) as {
    process?: Record<string, unknown>;
  };
  const execId = newId<string>();
  const dir = join(d.execs, short(execId));
  await fsp.mkdir(join(dir, 'exit'), { recursive: true });
  const processSpec = execProcessSpec(d.info, cfg.process, o);
  // the exec's environment: readable by root only
  await fsp.writeFile(join(dir, 'process.json'), JSON.stringify(processSpec), { mode: 0o600 });
  const name = d.rt(id);
  const attach = !o.detach;
  // prettier-ignore
  const args = [
    '--api-version', '1', '-c', id, '-u', short(execId), '-n', id, '-r', d.bin(name), '-b', dir,
    '-p', join(dir, 'pid'), '-l', `k8s-file:${join(dir, 'log')}`, '--exit-dir', join(dir, 'exit'),
    '--socket-dir-path', d.sockets, '--runtime-arg', `--root=${d.stateRoot(name)}`,
    '--exec', '--exec-process-spec', join(dir, 'process.json'), '--log-level', 'error', '--no-sync-log',
  ];
  if (o.tty) args.push('-t');
  if (o.openStdin) args.push('-i');
  if (attach) args.push('--exec-attach');
  const h = await startConmon(d.info.conmon.path, args, { attach, cwd: dir });
  let session: AttachSession | null = null;
  if (attach && h.attachPipe && h.startPipe) {
    h.startPipe.write('0'); // conmon waits for a first start message before anything else
    const ready = await h.attachPipe.next();
    if (ready.data < 0) throw runtimeError(ready.message ?? 'exec attach failed', 'exec');
    session = await connectAttach(join(d.sockets, short(execId), 'attach'), { stdin: o.openStdin });
    h.startPipe.write('0'); // and a second one, once we are attached, to run the process
  }
  const started: SyncMessage = await h.sync.next().catch(async (e: unknown) => {
    await h.stderrClosed(STDERR_DEADLINE_MS); // conmon's stderr can trail its sync pipe
    return { data: -1, message: h.stderr().trim() || errorMessage(e) };
  });
  if (started.data < 0) {
    session?.close();
    await fsp.rm(dir, { recursive: true, force: true });
    throw runtimeError(started.message ?? h.stderr(), 'exec');
  }
  const exitFile = join(dir, 'exit', id);
  const wait = async (): Promise<number> => {
    // conmon reports the exit code on the sync pipe; its exit file is the fallback
    const m = await h.sync.next(24 * 3600_000).catch(() => null);
    const code = m ? m.data : await waitForExitFile(exitFile, d.clock, EXIT_FILE_DEADLINE_MS);
    d.clock.setTimeout(() => void fsp.rm(dir, { recursive: true, force: true }), KEEP_MS);
    await fsp.rm(join(d.sockets, short(execId)), { force: true });
    return code !== null && Number.isFinite(code) ? code : 126;
  };
  const done = wait();
  return {
    pid: started.data,
    attach: session,
    logPath: join(dir, 'log'),
    wait: () => done,
    resize: async (hh, ww) => resizeVia(dir, hh, ww),
  };
}
