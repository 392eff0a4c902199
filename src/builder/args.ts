/**
 * ARG scoping of one build: the global ARGs (before the first FROM) with the predefined platform
 * ARGs, each ARG word's value (`--build-arg` wins, then the default, then the global value), and
 * which build args the Dockerfile consumed (dockerd warns about the others).
 */
import type { Instruction } from './parser.js';

export class BuildArgs {
  private readonly consumed = new Set<string>();
  /** the global scope (set by `globalScope`) */
  globals = new Map<string, string>();

  constructor(
    private readonly buildArgs: Readonly<Record<string, string>>,
    /** a word expanded with `vars` and unquoted */
    private readonly word: (w: string, vars: ReadonlyMap<string, string>) => string,
    /** how a bad ARG fails its step */
    private readonly fail: (ins: Instruction, reason: string) => never,
  ) {}

  /** Marks a build arg as used (SOURCE_DATE_EPOCH is, without an ARG). */
  consume(name: string): void {
    this.consumed.add(name);
  }

  /** The ARGs before the first FROM, with --build-arg values and the predefined platform ARGs. */
  globalScope(args: Instruction[], platform: string): Map<string, string> {
    const g = new Map<string, string>([
      ['TARGETPLATFORM', platform],
      ['TARGETOS', 'linux'],
      ['TARGETARCH', 'amd64'],
      ['BUILDPLATFORM', 'linux/amd64'],
      ['BUILDOS', 'linux'],
      ['BUILDARCH', 'amd64'],
    ]);
    for (const ins of args) {
      for (const [k, v] of this.pairs(ins, g))
        if (v === null) g.delete(k);
        else g.set(k, v);
    }
    this.globals = g;
    return g;
  }

  /** ARG words -> (name, value): --build-arg wins, then the default, then the global value. */
  pairs(ins: Instruction, vars: ReadonlyMap<string, string>, fromGlobal = false): Array<[string, string | null]> {
    const out: Array<[string, string | null]> = [];
    for (const w of ins.args) {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w : w.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) this.fail(ins, `invalid ARG name: ${name}`);
      this.consumed.add(name);
      if (name in this.buildArgs) out.push([name, this.buildArgs[name]!]);
      else if (eq >= 0) out.push([name, this.word(w.slice(eq + 1), vars)]);
      else if (fromGlobal && this.globals.has(name)) out.push([name, this.globals.get(name)!]);
      else out.push([name, null]); // declared without a value: unset, as in Docker
    }
    return out;
  }

  /** The build args no ARG consumed (the predefined proxy ARGs excepted by the caller). */
  unused(): string[] {
    return Object.keys(this.buildArgs).filter((k) => !this.consumed.has(k));
  }
}
