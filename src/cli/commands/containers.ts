/**
 * The container verbs, one file (or a few related verbs) each; this index keeps `berth`'s entry
 * point (../../cmd/berth.ts) importing them from one place.
 */
export { ps } from './ps.js';
export { start, stop, restart, kill, pause, unpause, wait, rename } from './lifecycle.js';
export { rm, prune } from './remove.js';
export { inspect, top, diff, port } from './inspect.js';
export { logs, attach } from './logs.js';
export { exportCmd } from './export.js';
export { update } from './update.js';
export { stats } from './stats.js';
export { filtersParam } from './verb-util.js';
