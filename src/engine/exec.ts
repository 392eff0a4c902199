/**
 * Exec instances (POST /containers/{id}/exec, /exec/{id}/start|json|resize). An exec lives in
 * memory only: like dockerd, exec records do not survive a daemon restart.
 */
import { conflict, errorMessage, notFound } from '../base/errors.js';
import { newId, type ExecId } from '../base/ids.js';
import { parseExecCreate } from '../spec/exec-api.js';
import type { ExecHandle, AttachSession } from '../runtime/types.js';
import type { ContainerRecord } from './record.js';
import { execIn, type ExecHost } from './exec-in.js';
import type { ExecCreateBody } from '../spec/exec-api.js';
import type { EventBus } from './events.js';
import type { Operation } from './state.js';
import type { Clock } from '../base/clock.js';
import { actorOf } from './actor.js';

export type { AttachSession, ExecHandle };

/** What running a process in a container needs: its mounted rootfs (for the user's ids) and the runtime's exec. */
export type ExecRunner = ExecHost;

/** What exec instances need of the engine (narrow: the engine passes itself, nothing more is reachable). */
export interface ExecDeps extends ExecRunner {
  get(ref: string): ContainerRecord;
  find(ref: string): ContainerRecord | undefined;
  /** Conflict with Docker's wording when `op` is illegal in the container's status. */
  check(rec: ContainerRecord, op: Operation): void;
  readonly events: Pick<EventBus, 'emit'>;
  /** how long a finished exec stays inspectable is timed on it */
  readonly clock: Pick<Clock, 'setTimeout'>;
}

/** An exec's configuration: the create body as spec/ parsed it. */
export type ExecConfig = ExecCreateBody;

export interface ExecRecord {
  id: ExecId;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  exitCode: number | null;
  pid: number;
  handle: ExecHandle | null;
}

/** An exec without its process handle: what a front door shows. */
export type ExecView = Readonly<Omit<ExecRecord, 'handle'>>;

/** A started exec: its session (null when detached), its log (output the session drops at the end is there) and its end. */
export interface Started {
  exec: ExecView;
  attach: AttachSession | null;
  logPath: string;
  exited(): Promise<number>;
}

/** The exec's config from a POST /containers/{id}/exec body (spec/'s decoder: dockerd's types and checks). */
export function parseExecConfig(v: unknown): ExecConfig {
  return parseExecCreate(v);
}

export { execIn };

export class Execs {
  private readonly byId = new Map<string, ExecRecord>();
  constructor(private readonly engine: ExecDeps) {}

  create(containerRef: string, body: unknown): ExecId {
    const rec = this.engine.get(containerRef);
    // dockerd names the container as the client did here (errExecPaused(name)); "not running" has the id
    if (rec.state.status === 'paused')
      throw conflict(`Container ${containerRef} is paused, unpause the container before exec`);
    this.engine.check(rec, 'exec');
    const config = parseExecConfig(body);
    const id = newId<ExecId>();
    this.byId.set(id, { id, containerId: rec.id, config, running: false, exitCode: null, pid: 0, handle: null });
    rec.execIds.push(id);
    this.engine.events.emit('container', `exec_create: ${config.Cmd.join(' ')}`, rec.id, actorOf(rec, { execID: id }));
    return id;
  }

  private record(id: string): ExecRecord {
    const e = this.byId.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  /** An exec as front doors see it (`GET /exec/{id}/json`): its process handle stays here. */
  get(id: string): ExecView {
    return this.record(id);
  }

  /** What start checks before it runs anything (the API answers these with their own status codes). */
  startable(id: string): ExecView {
    return this.checkStartable(id);
  }

  private checkStartable(id: string): ExecRecord {
    const ex = this.record(id);
    // dockerd 20.10's words: "Error: Exec command <id> is already running" / "... has already run"
    if (ex.running) throw conflict(`Error: Exec command ${id} is already running`);
    if (ex.exitCode !== null) throw conflict(`Error: Exec command ${id} has already run`);
    this.engine.check(this.engine.get(ex.containerId), 'exec');
    return ex;
  }

  /**
   * Starts the process; resolves with its attach session (null when detached) once it runs. The
   * process gets a terminal when the exec was created with `Tty` (dockerd keeps the create-time
   * Tty; the start's only frames the stream). When the runtime cannot start it, the exec ends
   * with 126 whatever the cause, as dockerd's (`docker exec CTR /nonexist` exited 126 under 20.10:
   * "OCI runtime exec failed: ... no such file or directory"; `docker run` of it gives 127).
   */
  async start(id: string, opts: { detach: boolean }): Promise<Started> {
    const ex = this.checkStartable(id);
    const rec = this.engine.get(ex.containerId);
    ex.running = true;
    let handle: ExecHandle;
    try {
      handle = await execIn(this.engine, rec, {
        args: ex.config.Cmd,
        env: ex.config.Env,
        cwd: ex.config.WorkingDir,
        user: ex.config.User,
        tty: ex.config.Tty,
        openStdin: ex.config.AttachStdin && !opts.detach,
        privileged: ex.config.Privileged,
        detach: opts.detach,
      });
    } catch (e) {
      this.finish(ex, 126);
      throw e;
    }
    ex.handle = handle;
    ex.pid = handle.pid;
    this.engine.events.emit(
      'container',
      `exec_start: ${ex.config.Cmd.join(' ')}`,
      rec.id,
      actorOf(rec, { execID: id }),
    );
    void handle.wait().then(
      (code) => this.finish(ex, code),
      () => this.finish(ex, 126),
    );
    return { exec: ex, attach: handle.attach, logPath: handle.logPath, exited: () => handle.wait() };
  }

  /**
   * Resizes the exec's terminal (nothing before it started). A finished exec's process is gone:
   * dockerd 20.10 answers 404 "no such exec" (containerd's), berth's runtime would fail on its
   * closed control pipe.
   */
  async resize(id: string, h: number, w: number): Promise<void> {
    const ex = this.record(id);
    if (ex.exitCode !== null) throw notFound('no such exec');
    if (ex.handle)
      await ex.handle.resize(h, w).catch((e: unknown) => {
        if (ex.exitCode !== null) throw notFound('no such exec', e);
        throw e;
      });
  }

  private finish(ex: ExecRecord, code: number): void {
    ex.running = false;
    ex.exitCode = code;
    const rec = this.engine.find(ex.containerId);
    if (rec) {
      rec.execIds = rec.execIds.filter((x) => x !== ex.id);
      this.engine.events.emit('container', 'exec_die', rec.id, actorOf(rec, { execID: ex.id, exitCode: String(code) }));
    }
    // Keep the record a while for /exec/{id}/json, then forget it.
    this.engine.clock.setTimeout(() => this.byId.delete(ex.id), 5 * 60_000);
  }
}
