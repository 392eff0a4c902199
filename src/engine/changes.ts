/**
 * `--change` for commit and import: Dockerfile instructions applied to an image's runtime config.
 * Allowed, as in Docker: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL.
 */
import { invalidArgument } from '../base/errors.js';
import type { ImageRuntimeConfig } from '../spec/image.js';
import { mergeEnv } from './config.js';

/** `["a","b"]` (JSON form) or shell form -> `["/bin/sh","-c","..."]`. */
function commandForm(rest: string): string[] {
  const t = rest.trim();
  if (t.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(t);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    } catch {
      /* shell form below */
    }
  }
  return ['/bin/sh', '-c', t];
}

/** `k=v k2="v 2"` or legacy `k v`. */
function keyValues(rest: string, what: string): Array<[string, string]> {
  const t = rest.trim();
  if (!t.includes('=')) {
    const sp = t.search(/\s/);
    if (sp < 0) throw invalidArgument(`${what} requires at least one argument`);
    return [[t.slice(0, sp), t.slice(sp).trim()]];
  }
  const out: Array<[string, string]> = [];
  const re = /([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    let v = m[2] ?? '';
    if (v.startsWith('"')) v = JSON.parse(v) as string;
    else if (v.startsWith("'")) v = v.slice(1, -1);
    out.push([m[1]!, v]);
  }
  return out;
}

export function applyChanges(base: ImageRuntimeConfig, changes: readonly string[]): ImageRuntimeConfig {
  const cfg: ImageRuntimeConfig = { ...base };
  for (const change of changes) {
    const line = change.trim();
    if (!line) continue;
    const sp = line.search(/\s/);
    const instr = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const rest = sp < 0 ? '' : line.slice(sp + 1);
    switch (instr) {
      case 'CMD':
        cfg.Cmd = commandForm(rest);
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = commandForm(rest);
        break;
      case 'ENV':
        cfg.Env = mergeEnv(
          cfg.Env ?? [],
          keyValues(rest, 'ENV').map(([k, v]) => `${k}=${v}`),
        );
        break;
      case 'LABEL':
        cfg.Labels = { ...(cfg.Labels ?? {}), ...Object.fromEntries(keyValues(rest, 'LABEL')) };
        break;
      case 'EXPOSE':
        cfg.ExposedPorts = { ...(cfg.ExposedPorts ?? {}) };
        for (const p of rest.trim().split(/\s+/)) cfg.ExposedPorts[p.includes('/') ? p : `${p}/tcp`] = {};
        break;
      case 'VOLUME':
        cfg.Volumes = { ...(cfg.Volumes ?? {}) };
        for (const v of commandForm(rest)[0] === '/bin/sh' ? rest.trim().split(/\s+/) : commandForm(rest))
          cfg.Volumes[v] = {};
        break;
      case 'USER':
        cfg.User = rest.trim();
        break;
      case 'WORKDIR':
        cfg.WorkingDir = rest.trim();
        break;
      case 'STOPSIGNAL':
        cfg.StopSignal = rest.trim();
        break;
      case 'ONBUILD':
        cfg.OnBuild = [...(cfg.OnBuild ?? []), rest.trim()];
        break;
      default:
        throw invalidArgument(`${instr} is not a valid change command`);
    }
  }
  return cfg;
}
