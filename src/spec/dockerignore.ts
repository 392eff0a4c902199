/**
 * `.dockerignore` (moby/patternmatcher semantics): one pattern per line, `#` comments, blank
 * lines skipped; a pattern is cleaned like a path (`./a//b/` -> `a/b`, a leading `/` dropped);
 * `*` matches within one path element, `?` one character, `[...]` a class, `**` any number of
 * elements (also none); `!pattern` re-includes. The last matching pattern decides, and a pattern
 * that matches a directory excludes everything below it.
 */

interface Pattern {
  re: RegExp;
  /** number of path elements in the pattern, to match a file's parent directories */
  depth: number;
  exclusion: boolean;
}

/** filepath.Clean for slash paths, relative (`.` for the root). */
export function cleanPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else out.push('..');
    } else out.push(part);
  }
  return out.join('/') || '.';
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') i++;
        re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new Error(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!') || cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\(?!\])/g, '\\\\')}]`;
      i = end;
    } else if ('.+()|{}$^'.includes(c)) re += `\\${c}`;
    else re += c;
  }
  return new RegExp(`${re}$`, 's');
}

export class IgnoreMatcher {
  private readonly patterns: Pattern[];
  /** whether any pattern re-includes: then excluded directories must still be walked */
  readonly hasExclusions: boolean;

  constructor(lines: readonly string[]) {
    this.patterns = [];
    for (const raw of lines) {
      let p = raw.trim();
      if (!p || p.startsWith('#')) continue;
      const exclusion = p.startsWith('!');
      if (exclusion) p = p.slice(1).trim();
      p = cleanPath(p.replace(/^\/+/, ''));
      if (p === '.') continue; // `/` or `.`: Docker ignores such a pattern
      this.patterns.push({ re: compile(p), depth: p.split('/').length, exclusion });
    }
    this.hasExclusions = this.patterns.some((p) => p.exclusion);
  }

  static parse(text: string): IgnoreMatcher {
    return new IgnoreMatcher(text.split(/\r?\n/));
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** Whether the context-relative slash path `rel` is excluded. */
  ignores(rel: string): boolean {
    const path = cleanPath(rel);
    const parents = path.split('/');
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue; // only a pattern that could flip the answer matters
      let hit = p.re.test(path);
      if (!hit && p.depth < parents.length) hit = p.re.test(parents.slice(0, p.depth).join('/'));
      if (hit) matched = !p.exclusion;
    }
    return matched;
  }
}
