/**
 * berth: the CLI. Docker's verbs and flags over the Engine API only (never the engine's files).
 *   berth [-H unix:///run/berth/berth.sock] <command> [flags] [args]
 * Host: -H/--host, else BERTH_HOST, else DOCKER_HOST, else unix:///run/berth/berth.sock.
 * This is the whole CLI (dist/berth.cjs); the verbs of cli/parts/ are also bundled alone, and
 * bin/berth runs those bundles for them (cli/README.md "Start-up").
 */
import { cliRun, type Verbs } from '../cli/main.js';
import { VERBS as PS } from '../cli/parts/ps.js';
import { VERBS as RUN } from '../cli/parts/run.js';
import { VERBS as IMAGES } from '../cli/parts/images.js';
import { VERBS as INSPECT } from '../cli/parts/inspect.js';
import { VERBS as SYSTEM } from '../cli/parts/system.js';
import { VERBS as LIFECYCLE } from '../cli/parts/lifecycle.js';
import { exec } from '../cli/commands/exec.js';
import { cp } from '../cli/commands/cp.js';
import { logs, attach } from '../cli/commands/logs.js';
import { exportCmd } from '../cli/commands/export.js';
import { update } from '../cli/commands/update.js';
import { stats } from '../cli/commands/stats.js';
import { systemPrune } from '../cli/commands/system-prune.js';
import { build, builderPrune } from '../cli/commands/build.js';
import { network, volume } from '../cli/commands/networks.js';
import { checkpoint, migrate, restore } from '../cli/commands/checkpoint.js';
import { loginCmd, logoutCmd, pullCmd, pushCmd } from '../cli/commands/registry.js';
import { trustCmd } from '../cli/trust-loader.js';

/** The verbs that have no part of their own. */
const REST: Verbs = {
  exec,
  cp,
  logs,
  attach,
  export: exportCmd,
  update,
  stats,
  pull: pullCmd,
  push: pushCmd,
  login: loginCmd,
  logout: logoutCmd,
  build,
  restore,
  migrate,
  trust: trustCmd,
  'container exec': exec,
  'container cp': cp,
  'container logs': logs,
  'container attach': attach,
  'container export': exportCmd,
  'container update': update,
  'container stats': stats,
  'image pull': pullCmd,
  'image push': pushCmd,
  'image build': build,
  'system prune': systemPrune,
  'builder build': build,
  'builder prune': builderPrune,
  'network create': network.create,
  'network ls': network.ls,
  'network list': network.ls,
  'network inspect': network.inspect,
  'network rm': network.rm,
  'network remove': network.rm,
  'network prune': network.prune,
  'network connect': network.connect,
  'network disconnect': network.disconnect,
  'checkpoint create': checkpoint.create,
  'checkpoint ls': checkpoint.ls,
  'checkpoint list': checkpoint.ls,
  'checkpoint rm': checkpoint.rm,
  'checkpoint remove': checkpoint.rm,
  'checkpoint clone': checkpoint.clone,
  'volume create': volume.create,
  'volume ls': volume.ls,
  'volume list': volume.ls,
  'volume inspect': volume.inspect,
  'volume rm': volume.rm,
  'volume remove': volume.rm,
  'volume prune': volume.prune,
};

/** Every verb of the CLI. */
export const VERBS: Verbs = { ...PS, ...RUN, ...IMAGES, ...INSPECT, ...SYSTEM, ...LIFECYCLE, ...REST };

cliRun(VERBS);
