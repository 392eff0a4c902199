import { randomInt } from 'node:crypto';

const LEFT = [
  'admiring',
  'brave',
  'clever',
  'eager',
  'focused',
  'gallant',
  'happy',
  'jolly',
  'keen',
  'lucid',
  'modest',
  'nifty',
  'quirky',
  'serene',
  'stoic',
  'tender',
  'vibrant',
  'wizardly',
  'youthful',
  'zealous',
];
const RIGHT = [
  'hopper',
  'lovelace',
  'turing',
  'curie',
  'darwin',
  'euler',
  'fermat',
  'galois',
  'hamilton',
  'kepler',
  'knuth',
  'lamport',
  'liskov',
  'noether',
  'pike',
  'ritchie',
  'shannon',
  'thompson',
  'torvalds',
  'wozniak',
];

/** A Docker-style random name (`brave_turing`) not rejected by `taken`. */
export function randomName(taken: (n: string) => boolean): string {
  for (let i = 0; ; i++) {
    const n = `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}${i > 5 ? String(randomInt(100)) : ''}`;
    if (!taken(n)) return n;
  }
}
