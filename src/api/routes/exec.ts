/** Exec routes: POST /containers/{id}/exec, /exec/{id}/start, /exec/{id}/resize, GET /exec/{id}/json. */
import { invalidArgument } from '../../base/errors.js';
import { parseExecCreate, parseExecStart } from '../../spec/exec-api.js';
import type { Router } from '../http.js';
import type { Verbs } from '../../engine/verbs.js';
import { pipeSession } from './container-io.js';
import { errorMessage } from '../../base/errors.js';
import { frame, parseDetachKeys, STDOUT } from '../stream.js';

/** A terminal's height or width from the query (dockerd: strconv.Atoi, then a uint16 for the ioctl). */
export function dimension(v: string | null): number {
  if (v === null || v === '') return 0;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw invalidArgument(`invalid terminal size: ${v}`);
  return Number(v);
}

export function execRoutes(r: Router, v: Verbs): void {
  const execs = v.execs;

  r.on('POST', '/containers/{id}/exec', async (ctx) => {
    const config = parseExecCreate(await ctx.json());
    if (config.DetachKeys) parseDetachKeys(config.DetachKeys); // 400 now, not a cut stream at start
    const id = execs.create(ctx.params[0]!, config);
    ctx.send(201, { Id: id });
  });

  r.on('POST', '/exec/{id}/start', async (ctx) => {
    const body = parseExecStart(await ctx.json());
    const detach = body.Detach;
    const tty = body.Tty;
    const ex = execs.startable(ctx.params[0]!);
    // The stream's framing follows the start's Tty (unset: multiplexed), the process keeps the
    // create-time Tty: dockerd 20.10, an exec created with Tty:true and started with {} or
    // {"Tty":false}, sent /dev/pts/0 in stdout frames; one created without, started Tty:true, raw.
    const useTty = tty ?? false;
    const opts = { detach };
    if (detach) {
      await execs.start(ex.id, opts);
      ctx.send(200);
      return;
    }
    // like dockerd: the connection is taken over first; a process the runtime cannot start is an
    // error message in the stream and the exec's exit code (clients read it once the stream ends)
    const io = ctx.hijack(useTty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
    let started;
    try {
      started = await execs.start(ex.id, opts);
    } catch (e) {
      const msg = Buffer.from(`${errorMessage(e)}\r\n`);
      io.write(useTty ? msg : frame(STDOUT, msg));
      io.end();
      return;
    }
    if (!started.attach) {
      io.end();
      return;
    }
    pipeSession(io, started.attach, {
      tty: useTty,
      stdout: ex.config.AttachStdout,
      stderr: ex.config.AttachStderr,
      stdin: ex.config.AttachStdin,
      stdinOnce: true,
      detachKeys: ex.config.DetachKeys,
      // output conmon drops at exit is resent from the exec's log, as for containers
      log: { path: started.logPath, from: 0 },
      beforeEnd: () => started.exited(),
    });
  });

  r.on('POST', '/exec/{id}/resize', async (ctx) => {
    execs.get(ctx.params[0]!); // 404 first
    await execs.resize(ctx.params[0]!, dimension(ctx.query.get('h')), dimension(ctx.query.get('w')));
    ctx.send(201);
  });

  r.on('GET', '/exec/{id}/json', (ctx) => {
    const ex = execs.get(ctx.params[0]!);
    ctx.send(200, {
      ID: ex.id,
      Running: ex.running,
      ExitCode: ex.exitCode,
      ProcessConfig: {
        tty: ex.config.Tty,
        entrypoint: ex.config.Cmd[0],
        arguments: ex.config.Cmd.slice(1),
        privileged: ex.config.Privileged,
        user: ex.config.User,
      },
      OpenStdin: ex.config.AttachStdin,
      OpenStderr: ex.config.AttachStderr,
      OpenStdout: ex.config.AttachStdout,
      CanRemove: false,
      ContainerID: ex.containerId,
      DetachKeys: ex.config.DetachKeys,
      Pid: ex.pid,
    });
  });
}
