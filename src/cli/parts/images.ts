/** The image verbs of commands/images.ts (dist/cli/images.cjs). */
import { images, rmi, tag, history, importCmd, load, save, commit, imagePrune } from '../commands/images.js';
import type { Verbs } from '../main.js';

export const VERBS: Verbs = {
  images,
  rmi,
  tag,
  history,
  import: importCmd,
  load,
  save,
  commit,
  'container commit': commit,
  'image ls': images,
  'image list': images,
  'image rm': rmi,
  'image remove': rmi,
  'image tag': tag,
  'image history': history,
  'image import': importCmd,
  'image load': load,
  'image save': save,
  'image prune': imagePrune,
};
