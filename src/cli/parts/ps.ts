/** `berth ps` alone: the verb a CLI is started for most (its own bundle, dist/cli/ps.cjs). */
import { ps } from '../commands/ps.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = { ps, 'container ls': ps, 'container list': ps, 'container ps': ps };
