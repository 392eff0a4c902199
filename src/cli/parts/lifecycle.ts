/** The container lifecycle verbs and rm (dist/cli/lifecycle.cjs). */
import { start, stop, restart, kill, pause, unpause, wait, rename } from '../commands/lifecycle.js';
import { rm, prune } from '../commands/remove.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = {
  start,
  stop,
  restart,
  kill,
  pause,
  unpause,
  wait,
  rename,
  rm,
  'container start': start,
  'container stop': stop,
  'container restart': restart,
  'container kill': kill,
  'container pause': pause,
  'container unpause': unpause,
  'container wait': wait,
  'container rename': rename,
  'container rm': rm,
  'container remove': rm,
  'container prune': prune,
};
