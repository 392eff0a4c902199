/**
 * The Dockerfile parser (pure: text in, instructions out), following Docker's: parser directives
 * (`# syntax=`, `# escape=`, `# check=`) only at the top, line continuations with the escape
 * character, comment lines and empty lines inside continuations dropped, instruction keywords in
 * any case, `--flag=value` options, exec (JSON array) versus shell form, here-documents
 * (`<<EOF`, `<<-EOF`, `<<"EOF"`), and `ENV`/`LABEL`/`ARG` key=value words with quotes.
 * Variable substitution is `expand()`, applied by the builder per instruction with the ARG/ENV
 * values in scope at that point. Errors name the line: `Dockerfile:7: unknown instruction: RUNN`.
 */
import { invalidArgument } from '../base/errors.js';
import { ParseFailed } from './types.js';

export const INSTRUCTIONS = [
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
] as const;
export type InstructionName = (typeof INSTRUCTIONS)[number];

/** Instructions whose arguments the builder expands ($VAR) itself; RUN/CMD/ENTRYPOINT leave it to the shell. */
export const EXPANDED: ReadonlySet<InstructionName> = new Set([
  'ADD',
  'ARG',
  'COPY',
  'ENV',
  'EXPOSE',
  'FROM',
  'LABEL',
  'ONBUILD',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
]);

export interface Heredoc {
  /** the terminator word, e.g. EOF */
  name: string;
  content: string;
  /** false for a quoted terminator (`<<"EOF"`): no variable expansion in the content */
  expand: boolean;
  /** `<<-`: leading tabs were stripped */
  chomp: boolean;
}

export interface Instruction {
  name: InstructionName;
  /** 1-based line where the instruction starts */
  line: number;
  /** `--name=value` options before the arguments (a repeated option keeps every value) */
  flags: Record<string, string[]>;
  /** exec form (a JSON array) or shell form */
  json: boolean;
  /** exec form: the array; shell form: the words (split on blanks, quotes kept as written) */
  args: string[];
  /** shell form: the argument text as written (continuations joined), for RUN/CMD/ENTRYPOINT */
  raw: string;
  heredocs: Heredoc[];
  /** ONBUILD's inner instruction */
  inner?: Instruction;
  /** the instruction as written (continuations joined), for history */
  original: string;
}

export interface Dockerfile {
  directives: Record<string, string>;
  escape: string;
  instructions: Instruction[];
}

/** instructions whose whole rest is one argument, spaces included (moby's `parseString`) */
const ONE_STRING: readonly string[] = ['WORKDIR', 'USER', 'STOPSIGNAL'];

/** `dockerd`: dockerd's whole message, where it is not "dockerfile parse error line N: <msg>" */
const fail = (file: string, line: number, msg: string, dockerd?: string): never => {
  throw new ParseFailed(file, line, msg, dockerd);
};

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const HEREDOC = /<<(-?)\s*(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;
const HEREDOC_INSTRUCTIONS = new Set<InstructionName>(['RUN', 'COPY', 'ADD']);

/** Splits on unquoted, unescaped blanks; quotes and escapes are kept for later processing. */
export function splitWords(s: string, escape = '\\'): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let started = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === escape && quote !== "'" && i + 1 < s.length) {
      cur += c + s[++i]!;
      started = true;
    } else if (quote) {
      cur += c;
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
      started = true;
    } else if (/\s/.test(c)) {
      if (started) out.push(cur);
      cur = '';
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (started) out.push(cur);
  return out;
}

/** Removes quotes and escapes from a word (after expansion). */
export function unquote(word: string, escape = '\\'): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < word.length; i++) {
    const c = word[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else out += c;
    } else if (c === escape && i + 1 < word.length) {
      const n = word[++i]!;
      // inside double quotes only the quote, the escape and $ are escapable
      out += quote === '"' && n !== '"' && n !== escape && n !== '$' ? c + n : n;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else out += c;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * Expands `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}` in `s`
 * (not inside single quotes; an escaped `$` stays literal, its escape kept for unquote()).
 * Unknown variables expand to the empty string, as in Docker.
 */
export function expand(s: string, vars: ReadonlyMap<string, string>, escape = '\\'): string {
  let out = '';
  let single = false;
  let double = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === escape && !single && i + 1 < s.length) {
      out += c + s[++i]!;
      continue;
    }
    if (c === "'" && !double) single = !single;
    if (c === '"' && !single) double = !double;
    if (c !== '$' || single) {
      out += c;
      continue;
    }
    const rest = s.slice(i + 1);
    const simple = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (simple) {
      out += vars.get(simple[0]) ?? '';
      i += simple[0].length;
      continue;
    }
    if (rest.startsWith('{')) {
      // find the matching brace (nested ${} allowed in the word)
      let depth = 0;
      let j = 0;
      for (; j < rest.length; j++) {
        if (rest[j] === '{') depth++;
        else if (rest[j] === '}' && --depth === 0) break;
      }
      if (j >= rest.length) throw invalidArgument(`missing '}' in ${s}`);
      const body = rest.slice(1, j);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?$/s.exec(body);
      if (!m) throw invalidArgument(`bad substitution: \${${body}}`);
      const [, name, op, word = ''] = m;
      const set = vars.has(name!);
      const val = vars.get(name!) ?? '';
      const sub = () => expand(word, vars, escape);
      if (!op) out += val;
      else if (op === ':-') out += val !== '' ? val : sub();
      else if (op === '-') out += set ? val : sub();
      else if (op === ':+') out += val !== '' ? sub() : '';
      else out += set ? sub() : '';
      i += j + 1;
      continue;
    }
    out += c;
  }
  return out;
}

/** A word of an instruction as the builder uses it: variables expanded, then quotes removed. */
export function expandWord(w: string, vars: ReadonlyMap<string, string>, escape = '\\'): string {
  return unquote(expand(w, vars, escape), escape);
}

/** `KEY=value KEY2="two words"` (or the legacy `KEY value with spaces` when `legacy`) -> pairs, unquoted after expansion. */
export function keyValues(
  words: string[],
  vars: ReadonlyMap<string, string>,
  escape: string,
  what: string,
  legacy: boolean,
): Array<[string, string]> {
  if (words.length === 0) throw invalidArgument(`${what} requires at least one argument`);
  if (legacy && !words[0]!.includes('=')) {
    if (words.length < 2) throw invalidArgument(`${what} must have two arguments`);
    return [[expandWord(words[0]!, vars, escape), expandWord(words.slice(1).join(' '), vars, escape)]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalidArgument(`${what} names can not be blank or missing '=': ${w}`);
    return [expandWord(w.slice(0, eq), vars, escape), expandWord(w.slice(eq + 1), vars, escape)];
  });
}

function parseFlags(text: string, escape: string): { flags: Record<string, string[]>; rest: string } {
  const flags: Record<string, string[]> = {};
  let rest = text;
  for (;;) {
    const m = /^--([a-zA-Z][a-zA-Z0-9-]*)(?:=((?:"[^"]*"|'[^']*'|\S)*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    (flags[m[1]!] ??= []).push(m[2] === undefined ? 'true' : unquote(m[2], escape));
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

function parseInstruction(
  file: string,
  line: number,
  text: string,
  escape: string,
  heredocs: Heredoc[],
  original: string,
): Instruction {
  const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(text);
  if (!m) fail(file, line, 'empty instruction');
  const word = m![1]!;
  const upper = word.toUpperCase() as InstructionName;
  if (!(INSTRUCTIONS as readonly string[]).includes(upper)) fail(file, line, `unknown instruction: ${word}`);
  const body = m![2]!.trim();
  if (upper === 'ONBUILD') {
    if (!body) fail(file, line, 'ONBUILD requires at least one argument');
    const inner = parseInstruction(file, line, body, escape, heredocs, body);
    if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(inner.name))
      fail(file, line, `${inner.name} isn't allowed as an ONBUILD trigger`);
    return { name: 'ONBUILD', line, flags: {}, json: false, args: [body], raw: body, heredocs: [], inner, original };
  }
  const { flags, rest } = parseFlags(body, escape);
  let json = false;
  let args: string[];
  if (rest.startsWith('[') && !['ENV', 'LABEL', 'ARG'].includes(upper)) {
    try {
      const v: unknown = JSON.parse(rest);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) {
        json = true;
        args = v as string[];
      } else args = splitWords(rest, escape);
    } catch {
      args = splitWords(rest, escape); // not JSON: shell form, as Docker falls back
    }
  } else if (ONE_STRING.includes(upper)) {
    args = rest ? [rest] : []; // dockerd's parseString: `WORKDIR /a b` is the one path "/a b"
  } else {
    args = splitWords(rest, escape);
  }
  const need = (ok: boolean, msg: string) => ok || fail(file, line, msg);
  switch (upper) {
    case 'FROM':
      need(
        args.length === 1 || (args.length === 3 && args[1]!.toUpperCase() === 'AS'),
        'FROM requires either one or three arguments',
      );
      break;
    case 'COPY':
    case 'ADD':
      need(
        args.length + heredocs.length >= 2,
        `${upper} requires at least two arguments, but only one was provided. Destination could not be determined`,
      );
      break;
    case 'RUN':
      need(args.length > 0 || heredocs.length > 0, 'RUN requires at least one argument');
      break;
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
      need(args.length === 1, `${upper} requires exactly one argument`);
      break;
    case 'ARG':
      need(args.length >= 1, 'ARG requires at least one argument');
      break;
    case 'ENV':
    case 'LABEL':
    case 'EXPOSE':
    case 'VOLUME':
    case 'MAINTAINER':
      need(args.length >= 1, `${upper} requires at least one argument`);
      break;
    case 'SHELL':
      need(json && args.length > 0, 'SHELL requires the arguments to be in JSON form');
      break;
    case 'HEALTHCHECK':
      need(
        args.length > 0 && (args[0]!.toUpperCase() === 'NONE' || args[0]!.toUpperCase() === 'CMD'),
        'HEALTHCHECK requires NONE or CMD',
      );
      break;
    default:
      break;
  }
  return { name: upper, line, flags, json, args, raw: rest, heredocs, original };
}

/** Parses a Dockerfile. `file` names it in errors (`Dockerfile`, `sub/Dockerfile.dev`). */
export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const directives: Record<string, string> = {};
  let i = 0;
  // directives: only in the leading comment block, before any blank line or instruction
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (key in directives) fail(file, i + 1, `only one ${key} parser directive can be used`);
    directives[key] = m[2]!;
  }
  const escape = directives['escape'] ?? '\\';
  if (escape !== '\\' && escape !== '`') fail(file, 1, `invalid escape token '${escape}' does not match ` + '` or \\');
  const instructions: Instruction[] = [];
  while (i < lines.length) {
    const start = i;
    const first = lines[i]!;
    i++;
    if (/^\s*(#|$)/.test(first)) continue;
    // join continuations; comment and empty lines inside them are dropped
    let text = first;
    const cont = (s: string) => {
      const t = s.replace(/\s+$/, '');
      return t.endsWith(escape) ? t.slice(0, -1) : null; // Docker's rule: the escape, then only blanks
    };
    for (let c = cont(text); c !== null; c = cont(text)) {
      text = c;
      while (i < lines.length && /^\s*(#|$)/.test(lines[i]!)) i++;
      if (i >= lines.length) break;
      text += lines[i]!;
      i++;
    }
    const keyword = (/^\s*(\S+)/.exec(text)?.[1] ?? '').toUpperCase() as InstructionName;
    const innerKeyword =
      keyword === 'ONBUILD' ? ((/^\s*\S+\s+(\S+)/.exec(text)?.[1] ?? '').toUpperCase() as InstructionName) : keyword;
    const heredocs: Heredoc[] = [];
    if (HEREDOC_INSTRUCTIONS.has(innerKeyword)) {
      for (const h of text.matchAll(HEREDOC)) {
        const chomp = h[1] === '-';
        const name = h[3]!;
        const body: string[] = [];
        for (;;) {
          if (i >= lines.length) fail(file, start + 1, `unterminated heredoc ${name}`);
          const l = lines[i++]!;
          if ((chomp ? l.replace(/^\t+/, '') : l) === name) break;
          body.push(chomp ? l.replace(/^\t+/, '') : l);
        }
        heredocs.push({ name, content: body.length ? `${body.join('\n')}\n` : '', expand: h[2] === '', chomp });
      }
    }
    instructions.push(parseInstruction(file, start + 1, text, escape, heredocs, text.trim()));
  }
  const firstReal = instructions.find((x) => x.name !== 'ARG');
  if (firstReal && firstReal.name !== 'FROM')
    fail(
      file,
      firstReal.line,
      `${firstReal.name} before FROM: only ARG may come before the first FROM`,
      'no build stage in current context',
    );
  if (!firstReal)
    fail(
      file,
      lines.length,
      'no FROM instruction: a Dockerfile must start with FROM (after ARGs)',
      instructions.length ? undefined : 'failed to parse Dockerfile: file with no instructions',
    );
  return { directives, escape, instructions };
}

export interface Stage {
  /** index in the file */
  index: number;
  /** `AS name`, lower-cased, or null */
  name: string | null;
  /** the FROM instruction */
  from: Instruction;
  instructions: Instruction[];
}

/** Groups instructions into stages; the ARGs before the first FROM are the global ones. */
export function stagesOf(df: Dockerfile, file = 'Dockerfile'): { globalArgs: Instruction[]; stages: Stage[] } {
  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of df.instructions) {
    if (ins.name === 'FROM') {
      const name = ins.args.length === 3 ? ins.args[2]!.toLowerCase() : null;
      if (name && !/^[a-z][a-z0-9_.-]*$/.test(name))
        fail(
          file,
          ins.line,
          `invalid name for build stage: "${ins.args[2]}", name can't start with a number or contain symbols`,
        );
      if (name && stages.some((s) => s.name === name))
        fail(file, ins.line, `duplicate name for build stage: "${name}"`);
      stages.push({ index: stages.length, name, from: ins, instructions: [] });
    } else if (stages.length === 0) globalArgs.push(ins);
    else stages[stages.length - 1]!.instructions.push(ins);
  }
  return { globalArgs, stages };
}
