/**
 * The instructions that only change the image config (pure): ENV, LABEL, MAINTAINER, EXPOSE,
 * VOLUME, USER, STOPSIGNAL, SHELL, CMD, ENTRYPOINT, ONBUILD, HEALTHCHECK. Each updates `cfg` and
 * says what its history entry reads (dockerd's legacy form after `#(nop)`).
 */
import { invalidArgument } from '../base/errors.js';
import { goDurationNs } from '../base/duration.js';
import type { HealthConfig, ImageRuntimeConfig } from '../spec/image.js';
import { expand, expandWord, keyValues, type Instruction } from './parser.js';

const goQuote = (a: readonly string[]) => `[${a.map((x) => JSON.stringify(x)).join(' ')}]`;

/** Go duration (`30s`, `1m30s`, `500ms`) -> nanoseconds. */
function durationNs(s: string, flag: string): number {
  const ns = goDurationNs(s);
  if (ns === null) throw invalidArgument(`invalid duration for --${flag}: ${s}`);
  return ns;
}

function healthcheck(ins: Instruction): HealthConfig {
  if (ins.args[0]!.toUpperCase() === 'NONE') {
    if (ins.args.length > 1) throw invalidArgument('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  const rest = ins.raw.replace(/^\s*CMD\s*/i, '');
  let test: string[];
  try {
    const v: unknown = JSON.parse(rest);
    test =
      Array.isArray(v) && v.every((x) => typeof x === 'string') ? ['CMD', ...(v as string[])] : ['CMD-SHELL', rest];
  } catch {
    test = ['CMD-SHELL', rest];
  }
  if (test.length === 1 || (test[0] === 'CMD-SHELL' && !rest.trim()))
    throw invalidArgument('HEALTHCHECK CMD requires a command');
  const h: HealthConfig = { Test: test };
  const dur = (flag: string) => {
    const v = ins.flags[flag]?.[0];
    return v === undefined ? undefined : durationNs(v, flag);
  };
  const known = new Set(['interval', 'timeout', 'start-period', 'start-interval', 'retries']);
  for (const f of Object.keys(ins.flags)) if (!known.has(f)) throw invalidArgument(`unknown flag: --${f}`);
  const interval = dur('interval');
  const timeout = dur('timeout');
  const start = dur('start-period');
  const startInterval = dur('start-interval');
  if (interval !== undefined) h.Interval = interval;
  if (timeout !== undefined) h.Timeout = timeout;
  if (start !== undefined) h.StartPeriod = start;
  if (startInterval !== undefined) h.StartInterval = startInterval;
  const retries = ins.flags['retries']?.[0];
  if (retries !== undefined) {
    if (!/^\d+$/.test(retries)) throw invalidArgument(`invalid --retries: ${retries}`);
    h.Retries = Number(retries);
  }
  return h;
}

/**
 * Applies a config-only instruction to `cfg` (`stage.cmdSet` tracks whether this stage set CMD:
 * ENTRYPOINT resets an inherited one). Returns the history text (and the author for MAINTAINER),
 * or null for an instruction that is not config-only.
 */
export function configStep(
  ins: Instruction,
  cfg: ImageRuntimeConfig,
  vars: ReadonlyMap<string, string>,
  escape: string,
  stage: { cmdSet: boolean },
): { text: string; author?: string } | null {
  const word = (w: string) => expandWord(w, vars, escape);
  switch (ins.name) {
    case 'ENV': {
      const pairs = keyValues(ins.args, vars, escape, 'ENV', true);
      const env = [...(cfg.Env ?? [])];
      for (const [k, v] of pairs) {
        const i = env.findIndex((e) => e.startsWith(`${k}=`));
        if (i >= 0) env[i] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      cfg.Env = env;
      return { text: `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}` };
    }
    case 'LABEL': {
      const pairs = keyValues(ins.args, vars, escape, 'LABEL', true);
      cfg.Labels = { ...(cfg.Labels ?? {}), ...Object.fromEntries(pairs) };
      return { text: `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}` };
    }
    case 'MAINTAINER': {
      const author = ins.args.map(word).join(' ');
      return { text: `MAINTAINER ${author}`, author };
    }
    case 'EXPOSE': {
      const ports = { ...(cfg.ExposedPorts ?? {}) };
      const added: string[] = [];
      for (const w of ins.args) {
        const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(word(w));
        if (!m) throw invalidArgument(`Invalid containerPort: ${w}`);
        const lo = Number(m[1]);
        const hi = Number(m[2] ?? m[1]);
        if (hi < lo || hi > 65535) throw invalidArgument(`invalid port range: ${w}`);
        for (let p = lo; p <= hi; p++) {
          ports[`${p}/${(m[3] ?? 'tcp').toLowerCase()}`] = {};
          added.push(`${p}/${(m[3] ?? 'tcp').toLowerCase()}`);
        }
      }
      cfg.ExposedPorts = ports;
      return { text: `EXPOSE ${added.join(' ')}` };
    }
    case 'VOLUME': {
      const vols = ins.json ? ins.args.map((a) => expand(a, vars, escape)) : ins.args.map(word);
      if (vols.some((v) => !v.trim())) throw invalidArgument('VOLUME specified can not be an empty string');
      cfg.Volumes = { ...(cfg.Volumes ?? {}), ...Object.fromEntries(vols.map((v) => [v, {}])) };
      return { text: `VOLUME [${vols.join(' ')}]` };
    }
    case 'USER':
      cfg.User = word(ins.args[0]!);
      return { text: `USER ${cfg.User}` };
    case 'STOPSIGNAL': {
      const sig = word(ins.args[0]!);
      if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/i.test(sig)) throw invalidArgument(`invalid signal: ${sig}`);
      cfg.StopSignal = sig;
      return { text: `STOPSIGNAL ${sig}` };
    }
    case 'SHELL':
      cfg.Shell = ins.args;
      return { text: `SHELL ${goQuote(ins.args)}` };
    case 'CMD':
      cfg.Cmd = ins.json ? ins.args : [...(cfg.Shell ?? ['/bin/sh', '-c']), ins.raw];
      stage.cmdSet = true;
      return { text: `CMD ${goQuote(cfg.Cmd)}` };
    case 'ENTRYPOINT':
      cfg.Entrypoint = ins.json ? ins.args : [...(cfg.Shell ?? ['/bin/sh', '-c']), ins.raw];
      if (!stage.cmdSet) cfg.Cmd = null; // an inherited CMD is reset by ENTRYPOINT
      return { text: `ENTRYPOINT ${goQuote(cfg.Entrypoint)}` };
    case 'ONBUILD':
      cfg.OnBuild = [...(cfg.OnBuild ?? []), ins.args[0]!];
      return { text: `ONBUILD ${ins.args[0]}` };
    case 'HEALTHCHECK':
      cfg.Healthcheck = healthcheck(ins);
      return { text: `HEALTHCHECK ${goQuote(cfg.Healthcheck.Test ?? [])}` };
    default:
      return null;
  }
}
