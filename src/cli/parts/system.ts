/** version, info, events, system df (dist/cli/system.cjs). */
import { version, info, events, df } from '../commands/system.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = {
  version,
  info,
  events,
  'system df': df,
  'system info': info,
  'system events': events,
};
