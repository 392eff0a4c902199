/** Exec routes: POST /containers/{id}/exec, /exec/{id}/start, /exec/{id}/resize, GET /exec/{id}/json. */
import { asObject, optBool } from '../../base/json.js';
import type { Router } from '../http.js';
import type { Execs } from '../../engine/exec.js';
import { pipeSession } from './container-io.js';

export function execRoutes(r: Router, execs: Execs): void {
  r.on('POST', '/containers/{id}/exec', async (ctx) => {
    const id = execs.create(ctx.params[0]!, await ctx.json());
    ctx.send(201, { Id: id });
  });

  r.on('POST', '/exec/{id}/start', async (ctx) => {
    const body = asObject(await ctx.json(), 'exec start');
    const detach = optBool(body, 'Detach', 'exec start') ?? false;
    const tty = optBool(body, 'Tty', 'exec start');
    const ex = execs.get(ctx.params[0]!);
    const useTty = tty ?? ex.config.Tty;
    const { attach, exec: started } = await execs.start(ex.id, tty === undefined ? { detach } : { detach, tty });
    if (detach || !attach) {
      ctx.send(200);
      return;
    }
    const io = ctx.hijack(useTty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
    pipeSession(io, attach, {
      tty: useTty,
      stdout: ex.config.AttachStdout,
      stderr: ex.config.AttachStderr,
      stdin: ex.config.AttachStdin,
      stdinOnce: true,
      detachKeys: ex.config.DetachKeys,
      // output conmon drops at exit is resent from the exec's log, as for containers
      ...(started.handle ? { log: { path: started.handle.logPath, from: 0 } } : {}),
      beforeEnd: () => started.handle?.wait() ?? Promise.resolve(),
    });
  });

  r.on('POST', '/exec/{id}/resize', async (ctx) => {
    const ex = execs.get(ctx.params[0]!);
    const h = Number(ctx.query.get('h') ?? 0);
    const w = Number(ctx.query.get('w') ?? 0);
    if (ex.handle) await ex.handle.resize(h, w);
    ctx.send(201);
  });

  r.on('GET', '/exec/{id}/json', (ctx) => {
    const ex = execs.get(ctx.params[0]!);
    ctx.send(200, {
      ID: ex.id,
      Running: ex.running,
      ExitCode: ex.exitCode,
      ProcessConfig: { tty: ex.config.Tty, entrypoint: ex.config.Cmd[0], arguments: ex.config.Cmd.slice(1), privileged: ex.config.Privileged, user: ex.config.User },
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
