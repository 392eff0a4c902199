/** inspect, top, diff, port (dist/cli/inspect.cjs). */
import { inspect, top, diff, port } from '../commands/inspect.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = {
  inspect: (ctx, a) => inspect(ctx, a),
  top,
  diff,
  port,
  'container inspect': (ctx, a) => inspect(ctx, a, 'container'),
  'container top': top,
  'container diff': diff,
  'container port': port,
  'image inspect': (ctx, a) => inspect(ctx, a, 'image'),
};
