/**
 * berth: the CLI. Docker's verbs and flags over the Engine API only (never the engine's files).
 *   berth [-H unix:///run/berth/berth.sock] <command> [flags] [args]
 * Host: -H/--host, else BERTH_HOST, else DOCKER_HOST, else unix:///run/berth/berth.sock.
 */
import { UsageError } from '../cli/args.js';
import { makeCtx, daemonError, ExitError, type Ctx } from '../cli/context.js';
import * as c from '../cli/commands/containers.js';
import * as img from '../cli/commands/images.js';
import * as sys from '../cli/commands/system.js';
import { systemPrune } from '../cli/commands/system-prune.js';
import { run, create } from '../cli/commands/run.js';
import { exec } from '../cli/commands/exec.js';
import { cp } from '../cli/commands/cp.js';
import { build, builderPrune } from '../cli/commands/build.js';
import { network, volume } from '../cli/commands/networks.js';
import { checkpoint, migrate, restore } from '../cli/commands/checkpoint.js';
import { loginCmd, logoutCmd, pullCmd, pushCmd } from '../cli/commands/registry.js';
import { trustCmd } from '../cli/trust-loader.js';

type Cmd = (ctx: Ctx, argv: string[]) => Promise<void>;

const COMMANDS: Record<string, Cmd> = {
  run,
  create,
  exec,
  cp,
  ps: c.ps,
  start: c.start,
  stop: c.stop,
  restart: c.restart,
  kill: c.kill,
  pause: c.pause,
  unpause: c.unpause,
  rm: c.rm,
  wait: c.wait,
  rename: c.rename,
  inspect: (ctx, a) => c.inspect(ctx, a),
  logs: c.logs,
  attach: c.attach,
  top: c.top,
  diff: c.diff,
  port: c.port,
  export: c.exportCmd,
  update: c.update,
  stats: c.stats,
  images: img.images,
  rmi: img.rmi,
  tag: img.tag,
  history: img.history,
  import: img.importCmd,
  load: img.load,
  save: img.save,
  commit: img.commit,
  version: sys.version,
  info: sys.info,
  events: sys.events,
  pull: pullCmd,
  push: pushCmd,
  login: loginCmd,
  logout: logoutCmd,
  build,
  restore,
  migrate,
  trust: trustCmd,
};

const GROUPS: Record<string, Record<string, Cmd>> = {
  container: {
    ls: c.ps,
    list: c.ps,
    ps: c.ps,
    run,
    create,
    exec,
    cp,
    start: c.start,
    stop: c.stop,
    restart: c.restart,
    kill: c.kill,
    pause: c.pause,
    unpause: c.unpause,
    rm: c.rm,
    remove: c.rm,
    wait: c.wait,
    rename: c.rename,
    inspect: (ctx, a) => c.inspect(ctx, a, 'container'),
    logs: c.logs,
    attach: c.attach,
    top: c.top,
    diff: c.diff,
    port: c.port,
    export: c.exportCmd,
    update: c.update,
    stats: c.stats,
    prune: c.prune,
    commit: img.commit,
  },
  image: {
    ls: img.images,
    list: img.images,
    rm: img.rmi,
    remove: img.rmi,
    tag: img.tag,
    history: img.history,
    import: img.importCmd,
    load: img.load,
    save: img.save,
    prune: img.imagePrune,
    inspect: (ctx, a) => c.inspect(ctx, a, 'image'),
    pull: pullCmd,
    push: pushCmd,
    build,
  },
  system: { df: sys.df, info: sys.info, events: sys.events, prune: systemPrune },
  builder: { build, prune: builderPrune },
  network: {
    create: network.create,
    ls: network.ls,
    list: network.ls,
    inspect: network.inspect,
    rm: network.rm,
    remove: network.rm,
    prune: network.prune,
    connect: network.connect,
    disconnect: network.disconnect,
  },
  checkpoint: {
    create: checkpoint.create,
    ls: checkpoint.ls,
    list: checkpoint.ls,
    rm: checkpoint.rm,
    remove: checkpoint.rm,
    clone: checkpoint.clone,
  },
  volume: {
    create: volume.create,
    ls: volume.ls,
    list: volume.ls,
    inspect: volume.inspect,
    rm: volume.rm,
    remove: volume.rm,
    prune: volume.prune,
  },
};

const HELP = `Usage:  berth [-H HOST] COMMAND

A container engine that speaks the Docker Engine API.

Commands:
  run create start stop restart kill pause unpause rm wait rename exec attach logs top stats
  inspect ps port diff cp export update commit images rmi tag history import load save
  build pull push login logout events info version restore migrate trust
Management commands:
  container  image  network  volume  checkpoint  system  builder  registry (serve, gc: run through bin/berth)
`;

async function main(argv: string[]): Promise<number> {
  let host: string | undefined;
  while (argv[0] === '-H' || argv[0] === '--host' || argv[0]?.startsWith('--host=')) {
    const a = argv.shift()!;
    host = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv.shift();
  }
  const verb = argv.shift();
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(HELP);
    return verb ? 0 : 1;
  }
  if (verb === '--version' || verb === '-v') argv.unshift('version');
  const group = GROUPS[verb];
  const cmd = group ? group[argv.shift() ?? ''] : COMMANDS[verb === '--version' || verb === '-v' ? 'version' : verb];
  if (!cmd) {
    process.stderr.write(`berth: '${verb}' is not a berth command.\nSee 'berth --help'\n`);
    return 1;
  }
  const ctx = makeCtx(host);
  try {
    await cmd(ctx, argv);
    return 0;
  } catch (e) {
    if (e instanceof ExitError) {
      if (e.message) process.stderr.write(`${e.message}\n`);
      return e.code;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`berth ${verb}: ${e.message}\n`);
      return 125;
    }
    process.stderr.write(`${daemonError(e)}\n`);
    return verb === 'run' || verb === 'create' ? 125 : 1;
  }
}

// `berth logs ... | head`: a closed pipe ends the command quietly, as for any Unix tool
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Streams (stdin) can hold the loop open: exit once output is flushed.
  process.stdout.write('', () => process.exit(code));
});
