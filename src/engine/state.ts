/**
 * Container status and the table of legal lifecycle operations per status.
 * The engine asks this table before acting (`ensure`); runtime/ only executes.
 */
import { conflict } from '../base/errors.js';

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export type Operation =
  | 'start'
  | 'stop'
  | 'kill'
  | 'pause'
  | 'unpause'
  | 'remove'
  | 'exec'
  | 'attach'
  | 'commit'
  | 'update'
  | 'restart'
  | 'resize'
  | 'top'
  // checkpoint/ asks these through the engine: a CRIU dump needs a running process; a restore, none
  | 'checkpoint'
  | 'restore';

const allowed: Record<Status, ReadonlySet<Operation>> = {
  created: new Set<Operation>(['start', 'stop', 'remove', 'attach', 'commit', 'update', 'restart', 'restore']),
  running: new Set<Operation>([
    'stop',
    'kill',
    'pause',
    'exec',
    'attach',
    'commit',
    'update',
    'restart',
    'resize',
    'top',
    'checkpoint',
  ]),
  paused: new Set<Operation>(['stop', 'kill', 'unpause', 'attach', 'commit', 'update', 'restart', 'resize', 'top']),
  // a kill while restarting cancels the restart (dockerd's 204; lifecycle.ts): there is no process to signal
  restarting: new Set<Operation>(['stop', 'kill', 'attach', 'commit', 'update', 'restart']),
  removing: new Set<Operation>([]),
  exited: new Set<Operation>(['start', 'stop', 'remove', 'attach', 'commit', 'update', 'restart', 'restore']),
  dead: new Set<Operation>(['remove']),
};

export function can(status: Status, op: Operation): boolean {
  return allowed[status].has(op);
}

/** Active: not to be removed without force; a stop has something to stop. */
export const isActive = (s: Status): boolean => s === 'running' || s === 'paused' || s === 'restarting';

/** The runtime holds a process for it (an exit is to come). */
export const hasTask = (s: Status): boolean => s === 'running' || s === 'paused';

/** Throws Conflict, with Docker's wording, when `op` is illegal in the container's status. */
export function ensure(c: { state: { status: Status }; name: string; id: string }, op: Operation): void {
  if (!can(c.state.status, op)) throw conflict(refusal(c.state.status, op, c.name, c.id));
}

/** The error Docker gives for an operation the status forbids (message text follows dockerd's). */
export function refusal(status: Status, op: Operation, name: string, id: string): string {
  switch (op) {
    case 'remove':
      return status === 'paused'
        ? `cannot remove container "/${name}": container is paused and must be unpaused first`
        : `cannot remove container "/${name}": container is ${status}: stop the container before removing or force remove`;
    case 'pause':
      return status === 'paused' ? `Container ${id} is already paused` : `Container ${id} is not running`;
    case 'unpause':
      return `Container ${id} is not paused`;
    case 'exec':
      return status === 'paused'
        ? `Container ${id} is paused, unpause the container before exec`
        : `Container ${id} is not running`;
    case 'kill':
      return `Cannot kill container: ${name}: Container ${id} is not running`;
    case 'resize':
    case 'top':
      return `Container ${id} is not running`;
    case 'start':
      return status === 'paused'
        ? `cannot start a paused container, try unpause instead`
        : `Container ${id} is ${status}`;
    case 'checkpoint':
      return `Container ${name} is not running`;
    case 'restore':
      return status === 'running' || status === 'paused'
        ? `Container ${name} is running: stop it before restoring a checkpoint`
        : `Container ${id} is ${status}`;
    default:
      return `cannot ${op} container ${name}: container is ${status}`;
  }
}
