/** `run` and `create` (dist/cli/run.cjs). */
import { run, create } from '../commands/run.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = { run, create, 'container run': run, 'container create': create };
