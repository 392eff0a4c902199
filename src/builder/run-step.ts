/**
 * RUN: the command in a container (run.ts) on the parent's filesystem, with its mounts
 * (`--mount=type=cache|secret|tmpfs|bind`), ARGs in its environment, the network the request or
 * the flag asks; the cache key has the command, those ARGs and the mounts' sources.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { invalidArgument, notFound } from '../base/errors.js';
import { resolveInRoot } from '../archive/container-fs.js';
import type { ImageRuntimeConfig } from '../spec/image.js';
import type { Instruction } from './parser.js';
import { cacheMountDir, parseMountFlag, runStep, withSshTargets, type RunMount, type RunStep } from './run.js';
import { openSshSocket, sshOptions } from './ssh-mount.js';
import { PREDEFINED_ARGS, type StageCtx, type State, type StepEnv } from './steps.js';

export async function runInstruction(
  env: StepEnv,
  ctx: StageCtx,
  state: State,
  cfg: ImageRuntimeConfig,
  ins: Instruction,
  vars: Map<string, string>,
): Promise<State> {
  for (const f of Object.keys(ins.flags))
    if (!['mount', 'network', 'security'].includes(f)) throw invalidArgument(`unknown flag: --${f}`);
  if (ins.flags['security']?.some((s) => s !== 'sandbox'))
    throw invalidArgument(
      'RUN --security=insecure is not allowed: it needs the security.insecure entitlement, which berth does not grant',
    );
  const network = ins.flags['network']?.[0] ?? env.req.network;
  if (!['default', 'host', 'none'].includes(network)) throw invalidArgument(`unsupported RUN --network=${network}`);
  const shell = cfg.Shell ?? ['/bin/sh', '-c'];
  let args: string[];
  const onlyHeredoc = ins.heredocs.length === 1 && /^<<-?["']?\w+["']?$/.test(ins.raw.trim());
  if (ins.json) args = ins.args;
  else if (onlyHeredoc) args = [...shell, ins.heredocs[0]!.content];
  else args = [...shell, [ins.raw, ...ins.heredocs.map((h) => `${h.content}${h.name}`)].join('\n')];
  // ARGs are in the command's environment (ENV wins), not in the image
  const envNames = new Set((cfg.Env ?? []).map((e) => e.slice(0, e.indexOf('='))));
  const argEnv = [...ctx.args].filter(([k]) => !envNames.has(k)).map(([k, v]) => `${k}=${v}`);
  for (const p of PREDEFINED_ARGS)
    if (p in env.req.buildArgs && !ctx.args.has(p)) argEnv.push(`${p}=${env.req.buildArgs[p]}`);
  argEnv.sort();
  const specs = (ins.flags['mount'] ?? []).map((m) => parseMountFlag(env.word(m, vars)));
  const sshSock = withSshTargets(specs);
  for (const m of specs) if (m['type'] === 'ssh') sshOptions(m); // bad values fail before the cache is asked
  const what = ins.json ? ins.args.join(' ') : `${shell.join(' ')} ${ins.raw}`;
  const createdBy = argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ${what}` : what;
  const mountKeys: string[] = [];
  for (const m of specs) {
    const from = m['from'] ? await env.fromChain(m['from'], env.currentStage(ins)) : null;
    mountKeys.push(JSON.stringify({ ...m, from: from?.key ?? null }));
  }
  const parts = [
    'RUN',
    JSON.stringify(args),
    JSON.stringify(argEnv),
    JSON.stringify(mountKeys),
    network === 'none' ? 'none' : '',
  ];
  return env.commit(state, parts, createdBy, cfg, () =>
    execRun(
      env,
      state,
      cfg,
      ins,
      specs,
      args,
      [
        ...(cfg.Env ?? []),
        ...argEnv,
        // as BuildKit's LLB exec: SSH_AUTH_SOCK names the first ssh mount unless the environment sets it
        ...(sshSock && ![...(cfg.Env ?? []), ...argEnv].some((e) => e.startsWith('SSH_AUTH_SOCK='))
          ? [`SSH_AUTH_SOCK=${sshSock}`]
          : []),
      ],
      network === 'none' ? 'none' : network === 'default' && env.req.joinNetns ? { path: env.req.joinNetns() } : 'host',
      what,
    ),
  );
}

async function execRun(
  env: StepEnv,
  state: State,
  cfg: ImageRuntimeConfig,
  ins: Instruction,
  specs: Array<Record<string, string>>,
  args: string[],
  cmdEnv: string[],
  network: RunStep['network'],
  what: string,
): Promise<string | null> {
  const mounts: RunMount[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const locks: string[] = [];
  try {
    for (const m of specs) {
      const target = m['target']!;
      if (m['type'] === 'cache') {
        if (m['sharing'] === 'locked' || m['sharing'] === 'private') locks.push(m['id'] || target);
        mounts.push({
          type: 'bind',
          target,
          source: await cacheMountDir(env.d.root, m),
          readonly: m['readonly'] === 'true',
        });
      } else if (m['type'] === 'secret') {
        const id = m['id'] || basename(target);
        const data = env.req.secrets[id];
        if (!data) {
          if (m['required'] === 'true') throw invalidArgument(`secret ${id} not found`);
          continue;
        }
        mounts.push({
          type: 'secret',
          target,
          data,
          mode: m['mode'] ? parseInt(m['mode'], 8) : 0o400,
          uid: Number(m['uid'] ?? 0),
          gid: Number(m['gid'] ?? 0),
        });
      } else if (m['type'] === 'tmpfs') {
        mounts.push({ type: 'tmpfs', target, ...(m['size'] ? { size: m['size'] } : {}) });
      } else if (m['type'] === 'ssh') {
        const opt = sshOptions(m);
        const agents = env.req.ssh;
        // BuildKit: an agent the client does not forward skips an optional mount, fails a required one
        const missing = agents
          ? await agents.check(opt.id, env.req.signal)
          : `no SSH key ${JSON.stringify(opt.id)} forwarded from the client`;
        if (missing !== null) {
          if (/^(1|t|true)$/i.test(m['required'] ?? '')) throw invalidArgument(missing);
          continue;
        }
        const sock = await openSshSocket(env.d.scratch, agents!, opt, env.req.signal);
        cleanups.push(() => sock.close());
        mounts.push({ type: 'bind', target, source: sock.path, readonly: false });
      } else {
        mounts.push({
          type: 'bind',
          target,
          source: await bindSource(env, m, ins, cleanups),
          readonly: m['readwrite'] !== 'true',
        });
      }
    }
    const run = () =>
      runStep(
        {
          snapshots: env.d.snapshots,
          mounter: env.d.mounter,
          runtime: env.d.runtime,
          writeLayer: (f) => env.d.images.writeLayer(f),
          scratch: env.d.scratch,
        },
        {
          chainId: state.chainId,
          args,
          env: cmdEnv,
          cwd: cfg.WorkingDir || '/',
          user: cfg.User ?? '',
          mounts,
          network,
          runtime: env.d.defaultRuntime,
          epoch: env.epoch,
          signal: env.req.signal,
          // dockerd's legacy builder shows the command's stderr in red
          output: (s, chunk) =>
            env.out.stream(s === 'stderr' ? `\x1b[91m${chunk.toString()}\x1b[0m` : chunk.toString()),
          extraHosts: env.req.extraHosts ?? [],
          limits: env.req.limits,
        },
        what,
      );
    env.out.running();
    const withLocks = locks.reduce<() => Promise<{ diffId: string } | null>>(
      (f, id) => () => env.builder.locked(id, f),
      run,
    );
    const layer = await withLocks();
    return layer?.diffId ?? null;
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

/** RUN --mount=type=bind: a path of the context or of a stage/image, read only unless rw (then a private copy). */
async function bindSource(
  env: StepEnv,
  m: Record<string, string>,
  ins: Instruction,
  cleanups: Array<() => Promise<void>>,
): Promise<string> {
  const src = m['source'] ?? '/';
  let root: string;
  if (m['from']) {
    const from = await env.fromChain(m['from'], env.currentStage(ins));
    const v = env.d.snapshots.view(from.chainId);
    if ('dir' in v) root = v.dir;
    else {
      root = join(env.d.scratch, `view-${randomBytes(8).toString('hex')}`);
      await fsp.mkdir(root, { recursive: true });
      await env.d.mounter.mountAll([v.mount], root);
      const dir = root;
      cleanups.push(async () => {
        await env.d.mounter.unmount(dir).catch(() => undefined);
        await fsp.rmdir(dir).catch(() => undefined);
      });
    }
  } else {
    root = env.context.dir;
    env.context.clean(src);
  }
  const abs = await resolveInRoot(root, src);
  await fsp.lstat(abs).catch(() => {
    throw notFound(`RUN --mount: ${src} not found${m['from'] ? ` in ${m['from']}` : ' in the build context'}`);
  });
  if (m['readwrite'] !== 'true') return abs;
  const copy = join(env.d.scratch, `rw-${randomBytes(8).toString('hex')}`);
  await fsp.cp(abs, copy, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  cleanups.push(() => fsp.rm(copy, { recursive: true, force: true }));
  return copy;
}
