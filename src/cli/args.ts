/** Docker-style flags: `-it`, `-e K=V`, `--name=x`, `--name x`, repeated list flags, `--` ends flags. */
export type FlagType = 'bool' | 'string' | 'list';
export interface FlagSpec {
  [long: string]: { type: FlagType; short?: string };
}
export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  args: string[];
}

export class UsageError extends Error {}

/** Parses `argv`; with `interspersed: false` the first positional ends flag parsing (run, exec). */
export function parseArgs(argv: string[], spec: FlagSpec, interspersed = true): Parsed {
  const byShort = new Map(
    Object.entries(spec)
      .filter(([, s]) => s.short)
      .map(([l, s]) => [s.short!, l]),
  );
  const flags: Parsed['flags'] = {};
  const args: string[] = [];
  const set = (name: string, value: string | boolean) => {
    const s = spec[name]!;
    if (s.type === 'list') flags[name] = [...((flags[name] as string[] | undefined) ?? []), String(value)];
    else flags[name] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const s = spec[name];
      if (!s) throw new UsageError(`unknown flag: --${name}`);
      if (s.type === 'bool') set(name, eq > 0 ? a.slice(eq + 1) !== 'false' : true);
      else {
        const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: --${name}`);
        set(name, v);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const name = byShort.get(a[j]!);
        if (!name) throw new UsageError(`unknown shorthand flag: '${a[j]}' in ${a}`);
        if (spec[name]!.type === 'bool') {
          set(name, true);
          continue;
        }
        const rest = a.slice(j + 1);
        const v = rest ? rest.replace(/^=/, '') : argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: '${a[j]}' in -${a[j]}`);
        set(name, v);
        break;
      }
      continue;
    }
    args.push(a);
    if (!interspersed) {
      args.push(...argv.slice(i + 1));
      break;
    }
  }
  return { flags, args };
}

export const str = (p: Parsed, k: string): string | undefined => p.flags[k] as string | undefined;
export const bool = (p: Parsed, k: string): boolean => p.flags[k] === true;
export const list = (p: Parsed, k: string): string[] => (p.flags[k] as string[] | undefined) ?? [];

/** `name[:tag]` -> name and tag; a colon before the last `/` is a registry's port, not a tag. */
export function splitTag(ref: string): { name: string; tag?: string } {
  const c = ref.lastIndexOf(':');
  return c > ref.lastIndexOf('/') ? { name: ref.slice(0, c), tag: ref.slice(c + 1) } : { name: ref };
}
