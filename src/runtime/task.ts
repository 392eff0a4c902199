/**
 * A container's task: create (conmon + `<runtime> create`, or a restore from CRIU images), start,
 * resize, delete. conmon reports the container's pid on its sync pipe; a failure carries the
 * runtime's words, typed (errors.ts), and leaves no runtime state behind.
 */
import {
  closeSync,
  constants as fsc,
  existsSync,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { errorMessage, invalidArgument, unavailable } from '../base/errors.js';
import { writePrivateSync } from '../base/fs.js';
import { log } from '../base/log.js';
import type { CreateOptions, RuntimeName, SpecArg, SpecInput } from './types.js';
import { buildSpec, cgroupBinds } from './spec.js';
import { type ConmonHandle, detachNetnsCopies, startConmon } from './conmon.js';
import { makeCgroupDirs, removeCgroup, removeCgroupDirs, removeExitedCgroups } from './cgroups.js';
import { criuLogErrors } from './criu.js';
import { endConmon } from './checkpoint.js';
import { type RunDir, short } from './core.js';
import { runtimeError } from './errors.js';

export interface RestoreFrom {
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  lazyPages?: boolean;
}

/** What a restore asks of the CRIU side (checkpoint.ts `Checkpointer`). */
export interface RestoreGate {
  ready(rt: RuntimeName, verb: 'restore'): Promise<void>;
  /** the directory of berth's CRIU, first in PATH for crun's libcriu ('' without one) */
  readonly criuDir: string;
  /** how long a restore may take before CRIU is ended */
  readonly deadlineMs: number;
}

/**
 * The container's log holds what it prints (secrets too): 0600 before conmon writes a byte. conmon
 * 2.1.13 (scripts/conmon.sh) creates it 0640 where Debian's 2.1.6 made it 0600; an existing file
 * keeps its mode, so berth makes it first (and tightens one left by an older berth). A directory
 * that is not there is conmon's to report. Anything but a regular file (the `none` driver's /dev/null)
 * is left as it is. Synchronous, as the bundle's config.json (README, "The start path").
 */
function makeLogPrivate(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    // only a log file of ours: log driver `none` writes to the host's /dev/null, which must stay 0666
    if (fstatSync(fd).isFile()) fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** conmon's arguments for a container (the restore's, when restoring). */
function conmonArgs(d: RunDir, o: CreateOptions, cdir: string, restore?: RestoreFrom): string[] {
  // prettier-ignore
  const args = [
    '--api-version', '1', '-c', o.id, '-u', short(o.id), '-n', o.id, '-r', d.bin(o.runtime), '-b', o.bundleDir,
    '-p', join(cdir, 'pid'), '-l', `k8s-file:${o.logPath}`,
    '--exit-dir', d.exits, '--socket-dir-path', d.sockets, '--runtime-arg', `--root=${d.stateRoot(o.runtime)}`,
    // no fsync of the log when the container exits (it came before the exit file: every exit
    // waited for the disk); logs are written as they come, as dockerd's json-file does
    '--log-level', 'error', '--no-sync-log',
    // conmon does not fork to daemonize: the process berthd started is the monitor (its own
    // session already), one fork and one exit fewer per start; berthd writes conmon.pid
    '--sync',
  ];
  if (o.tty) args.push('-t');
  if (o.openStdin) args.push('-i');
  if (o.openStdin && !o.stdinOnce) args.push('--leave-stdin-open');
  if (restore) {
    // runc takes CRIU's path; crun finds it in PATH (pathPrefix)
    if (o.runtime === 'runc') args.push('--runtime-arg', `--criu=${d.info.checkpoint.criuPath}`);
    args.push('--restore', restore.imagePath, '--runtime-opt', `--work-path=${restore.workPath}`);
    if (restore.tcpEstablished) args.push('--runtime-opt', '--tcp-established');
    if (restore.lazyPages) args.push('--runtime-opt', '--lazy-pages');
  }
  return args;
}

/**
 * `create`, or with `restore` a restore from a CRIU checkpoint: conmon runs `<runtime> restore
 * --detach --image-path <dir>` instead, and the process goes on at once (no `start`). conmon's
 * report is awaited under a deadline (the checkpoint deadline for a restore).
 */
export async function createTask(
  d: RunDir,
  gate: RestoreGate,
  o: CreateOptions,
  specOrLater: SpecArg,
  restore?: RestoreFrom,
): Promise<{ pid: number; conmonPid: number }> {
  if (!d.info.runtimes[o.runtime]) throw invalidArgument(`runtime ${o.runtime} is not installed`);
  if (restore) await gate.ready(o.runtime, 'restore');
  const tp = performance.now();
  const cdir = join(d.ctrs, o.id);
  const args = conmonArgs(d, o, cdir, restore);
  const conmonOpts = { attach: false, cwd: cdir, ...(restore ? { pathPrefix: gate.criuDir } : {}) };
  makeLogPrivate(o.logPath);
  // A few bytes in the run dir (tmpfs as /run usually is), written synchronously (README, "The
  // start path"): through the thread pool each was a round trip. A previous run's exit file and
  // attach socket go before conmon starts.
  mkdirSync(cdir, { recursive: true });
  rmSync(join(d.exits, o.id), { force: true });
  rmSync(join(d.sockets, short(o.id)), { force: true });
  let h: ConmonHandle | null = null;
  // Not staged: conmon starts now and waits on its start pipe before it runs the runtime, so that
  // its exec and start-up (~4 ms of CPU here) run beside the spec's making and writing
  let early: Promise<ConmonHandle> | null = null;
  let later: SpecInput | Promise<SpecInput>;
  if (typeof specOrLater === 'function') {
    // staged (o.stage): the rootfs is mounted in conmon's namespace-to-be first, the spec made
    // from it (the user's ids), then conmon exec'd there
    if (!o.stage) throw invalidArgument('a spec made from the rootfs needs a staged rootfs');
    h = await startConmon(d.info.conmon.path, args, { ...conmonOpts, stage: o.stage });
    writeConmonPid(cdir, h.pid); // the staging process exec's conmon: the same pid
    const staged = h.staged!;
    try {
      await staged.mounted;
      later = await specOrLater(staged.view);
    } catch (e) {
      staged.abort();
      throw e;
    }
  } else {
    early = startConmon(d.info.conmon.path, args, { ...conmonOpts, startPipe: true });
    early.catch(() => undefined); // awaited below
    later = specOrLater;
  }
  let spec: SpecInput;
  let cgroupDirs: string[] = [];
  try {
    spec = await later; // a spec still being made (the user's ids read from the rootfs): made meanwhile
    const config = buildSpec(spec, d.info, o.runtime);
    cgroupDirs = cgroupBinds(spec, d.info, o.runtime).map((b) => b.dir);
    makeCgroupDirs(cgroupDirs);
    d.remember(o.id, o.runtime);
    d.rememberCgroup(o.id, spec.cgroupsPath);
    writeFileSync(join(cdir, 'runtime'), o.runtime);
    writeFileSync(join(cdir, 'cgroup'), spec.cgroupsPath);
    // the environment is in it: 0600 before a byte is written (also over a file an older berth
    // made), never through a link
    writePrivateSync(join(o.bundleDir, 'config.json'), JSON.stringify(config));
  } catch (e) {
    removeCgroupDirs(cgroupDirs);
    h?.staged?.abort();
    if (early) {
      await early.then(abandonConmon, () => undefined);
      await deleteTask(d, o.id);
    }
    throw e;
  }
  const tc = performance.now();
  if (h) h.staged!.go();
  else {
    h = await early!;
    writeConmonPid(cdir, h.pid);
    h.startPipe!.end('0'); // the runtime may run now
  }
  let msg;
  try {
    msg = await h.sync.next(restore ? gate.deadlineMs : undefined);
    const spawnToPidMs = +(performance.now() - tc).toFixed(1);
    log.debug('conmon', { id: o.id, prepMs: +(tc - tp).toFixed(1), spawnToPidMs });
  } catch (e) {
    // a restore past its deadline: conmon, the runtime and CRIU go (conmon's session), then its state
    if (restore) await endConmon(h.pid, cdir);
    await deleteTask(d, o.id);
    removeCgroupDirs(cgroupDirs);
    if (restore && spec.cgroupsPath) await removeCgroup(d.info.cgroupVersion, spec.cgroupsPath, d.clock);
    if (restore) {
      const logFile = join(restore.workPath, 'restore.log');
      const tail = await criuLogErrors(logFile);
      throw unavailable(
        `restore did not finish in ${gate.deadlineMs / 1000} s: CRIU was ended` +
          `${tail ? ` (criu: ${tail})` : ''}; CRIU's log: ${logFile}`,
      );
    }
    throw runtimeError(`${errorMessage(e)} ${h.stderr()}`);
  }
  if (msg.data < 0) {
    await deleteTask(d, o.id);
    removeCgroupDirs(cgroupDirs);
    throw runtimeError(msg.message ?? (h.stderr() || 'unknown error'));
  }
  h.sync.close(); // nothing more is read from it (exits come through exit files): one fd per container less
  const conmonPid = h.pid;
  if (o.stage)
    void detachNetnsCopies(conmonPid).catch((e: unknown) =>
      log.warn('could not detach /run/netns in the staging namespace', { id: o.id, err: errorMessage(e) }),
    );
  return { pid: msg.data, conmonPid };
}

/** A conmon still waiting on its start pipe, ended: it has run nothing yet (its own session, our child). */
function abandonConmon(h: ConmonHandle): void {
  try {
    process.kill(h.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  h.startPipe?.destroy();
  h.sync.close();
}

/** conmon.pid, as conmon wrote it when it daemonized: what live restore and `monitorAlive` read. */
function writeConmonPid(cdir: string, pid: number): void {
  writeFileSync(join(cdir, 'conmon.pid'), String(pid));
}

export async function startTask(d: RunDir, id: string): Promise<void> {
  if (d.rt(id) === 'crun' && openExecFifo(d, id)) return;
  try {
    await d.cli(id, ['start', id]);
  } catch (e) {
    throw runtimeError((e as { stderr?: string }).stderr || errorMessage(e));
  }
}

/**
 * `crun start` without spawning crun: its start only opens the state dir's exec.fifo for
 * writing, unlinks it and writes one byte, which releases the container's init blocked on the
 * other end (crun's libcrun_status_write_exec_fifo; we use no start hooks or notify socket).
 * False when the fifo has no reader (the init died): then crun itself reports why.
 */
function openExecFifo(d: RunDir, id: string): boolean {
  const fifo = join(d.stateRoot('crun'), id, 'exec.fifo');
  let fd: number;
  try {
    fd = openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    unlinkSync(fifo);
    writeSync(fd, Buffer.of(0));
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * For a container whose process has exited (conmon wrote its exit file), deleting it is removing
 * the runtime's state dir and the container's (empty) cgroups: done here without spawning the
 * runtime, which halves the exit path. Anything else goes through `<runtime> delete --force`.
 */
async function deleteExited(d: RunDir, id: string, stateDir: string): Promise<boolean> {
  if (!existsSync(join(d.exits, id))) return false;
  if (!(await removeExitedCgroups(d.info.cgroupVersion, d.cgroupOf(id)))) return false;
  removeFlatDir(stateDir);
  return true;
}

/** What conmon and `createTask` leave in `c/<id>/` (anything else: `removeFlatDir` reads the dir). */
const CTR_FILES = ['runtime', 'cgroup', 'pid', 'conmon.pid'];

/** Removes the runtime's state and conmon's files of container `id`. Idempotent. */
export async function deleteTask(d: RunDir, id: string): Promise<void> {
  // read before c/<id>/runtime goes
  const stateDir = join(d.stateRoot(d.rt(id)), id);
  if (existsSync(stateDir) && !(await deleteExited(d, id, stateDir)))
    await d.cli(id, ['delete', '--force', id]).catch(() => undefined);
  // berth's own small files: synchronously, as at create; by name (each a syscall), not through
  // rmSync's walk, which lstats every entry and tries rmdir on a full directory first
  unlinkQuiet(join(d.sockets, short(id)));
  unlinkQuiet(join(d.exits, id));
  removeFlatDir(join(d.ctrs, id), CTR_FILES);
}

/** unlink, nothing when it is not there; anything but a file or link (a directory) by rmSync. */
function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'EISDIR' || code === 'EPERM') rmSync(path, { recursive: true, force: true });
    else throw e;
  }
}

/**
 * Removes a directory of plain files (a runtime's state dir, `c/<id>/`): the `known` names
 * unlinked, then the directory; when more is in it (or `known` is not given), its entries are
 * read and unlinked, and whatever is still left (a subdirectory) goes by rmSync. Nothing when
 * the directory is not there.
 */
function removeFlatDir(dir: string, known?: readonly string[]): void {
  for (const name of known ?? []) unlinkQuiet(join(dir, name));
  if (known && rmdirQuiet(dir)) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) unlinkQuiet(join(dir, name));
  if (!rmdirQuiet(dir)) rmSync(dir, { recursive: true, force: true });
}

/** rmdir: true when it is gone (or was not there), false when it is not empty. */
function rmdirQuiet(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw e;
  }
}

/** conmon's control fifo in the bundle: `1 <h> <w>` resizes the terminal. */
export function resizeVia(bundle: string, h: number, w: number): void {
  ctlVia(bundle, `1 ${h} ${w}\n`);
}

/**
 * `2 0 0`: conmon closes and reopens its log file at the same path (the CRI's ReopenContainerLog,
 * after the kubelet moved the file away). False when no conmon listens (the container is not running).
 */
export function reopenLogVia(bundle: string): boolean {
  return ctlVia(bundle, '2 0 0\n');
}

function ctlVia(bundle: string, msg: string): boolean {
  const ctl = join(bundle, 'ctl');
  if (!existsSync(ctl)) return false;
  let fd: number;
  try {
    fd = openSync(ctl, fsc.O_WRONLY | fsc.O_NONBLOCK); // ENXIO: no reader, conmon is gone
  } catch {
    return false;
  }
  try {
    writeSync(fd, msg);
  } finally {
    closeSync(fd);
  }
  return true;
}
