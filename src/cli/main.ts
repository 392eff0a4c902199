/**
 * What every berth CLI bundle runs: the global flags, the verb's lookup, and the exit-code contract.
 * A bundle hands it a table of verbs: the whole CLI (cmd/berth.ts), or one part of it
 * (cli/parts/*.ts, each its own small bundle that bin/berth picks by the verb: see cli/README.md).
 * Verbs of a management command are keyed `<group> <verb>` ('container ls').
 */
import { UsageError } from './args.js';
import { makeCtx, daemonError, ExitError, type Ctx } from './context.js';
import { exitAfterOutput, watchStdio, write } from './stdio.js';

export type Cmd = (ctx: Ctx, argv: string[]) => Promise<void>;
export type Verbs = Record<string, Cmd>;

const HELP = `Usage:  berth [-H HOST] COMMAND

A container engine that speaks the Docker Engine API.

Commands:
  run create start stop restart kill pause unpause rm wait rename exec attach logs top stats
  inspect ps port diff cp export update commit images rmi tag history import load save
  build pull push login logout events info version restore migrate trust
Management commands:
  container  image  network  volume  checkpoint  system  builder  registry (serve, gc: run through bin/berth)
`;

/** `-H HOST` / `--host HOST` / `--host=HOST`, repeated; the last wins. Also bin/berth's rule. */
function takeHost(argv: string[]): string | undefined {
  let host: string | undefined;
  while (argv[0] === '-H' || argv[0] === '--host' || argv[0]?.startsWith('--host=')) {
    const a = argv.shift()!;
    host = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv.shift();
  }
  return host;
}

/** Runs the command named by `argv` (process.argv without node and the script); resolves with the exit code. */
export async function cliMain(verbs: Verbs, argv: string[]): Promise<number> {
  const host = takeHost(argv);
  let verb = argv.shift();
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    write('stdout', HELP);
    return verb ? 0 : 1;
  }
  if (verb === '--version' || verb === '-v') verb = 'version';
  const group = Object.keys(verbs).some((k) => k.startsWith(`${verb} `));
  const key = group ? `${verb} ${argv.shift() ?? ''}` : verb;
  const cmd = Object.hasOwn(verbs, key) ? verbs[key] : undefined;
  if (!cmd) {
    write('stderr', `berth: '${verb}' is not a berth command.\nSee 'berth --help'\n`);
    return 1;
  }
  const ctx = makeCtx(host);
  try {
    await cmd(ctx, argv);
    return 0;
  } catch (e) {
    if (e instanceof ExitError) {
      if (e.message) write('stderr', `${e.message}\n`);
      return e.code;
    }
    if (e instanceof UsageError) {
      write('stderr', `berth ${verb}: ${e.message}\n`);
      return 125;
    }
    write('stderr', `${daemonError(e)}\n`);
    return verb === 'run' || verb === 'create' ? 125 : 1;
  }
}

/** A bundle's entry: runs the CLI on this process's arguments, then exits once stdout is flushed. */
export function cliRun(verbs: Verbs): void {
  watchStdio();
  // streams (stdin) can hold the loop open: exit once the output is out
  void cliMain(verbs, process.argv.slice(2)).then(exitAfterOutput);
}
