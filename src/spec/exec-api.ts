/** Engine API exec request bodies (create, start), decoded as dockerd decodes them (see engine-api.ts). */
import { invalidArgument } from '../base/errors.js';
import { decodeGo } from './go-json.js';
import * as schema from './engine-schema.js';
import { checkStrings } from './engine-api.js';

export interface ExecCreateBody {
  Cmd: string[];
  Env: string[];
  User: string;
  WorkingDir: string;
  Tty: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Privileged: boolean;
  DetachKeys: string;
}

/** POST /containers/{id}/exec body (dockerd: "No exec command specified" without a Cmd). */
export function parseExecCreate(v: unknown): ExecCreateBody {
  const o = decodeGo(schema.execConfig, v ?? {}) as Partial<ExecCreateBody>;
  const cmd = o.Cmd ?? [];
  if (cmd.length === 0) throw invalidArgument('No exec command specified');
  checkStrings('command', cmd);
  checkStrings('environment variable', o.Env);
  for (const e of o.Env ?? [])
    if (e.startsWith('=') || e === '') throw invalidArgument(`invalid environment variable: ${e}`);
  if (o.WorkingDir && !o.WorkingDir.startsWith('/'))
    throw invalidArgument(`the working directory '${o.WorkingDir}' is invalid, it needs to be an absolute path`);
  checkStrings('user', o.User ? [o.User] : []);
  return {
    Cmd: cmd,
    Env: o.Env ?? [],
    User: o.User ?? '',
    WorkingDir: o.WorkingDir ?? '',
    Tty: o.Tty ?? false,
    AttachStdin: o.AttachStdin ?? false,
    AttachStdout: o.AttachStdout ?? false,
    AttachStderr: o.AttachStderr ?? false,
    Privileged: o.Privileged ?? false,
    DetachKeys: o.DetachKeys ?? '',
  };
}

/** POST /exec/{id}/start body. */
export function parseExecStart(v: unknown): { Detach: boolean; Tty?: boolean } {
  const o = decodeGo(schema.execStartCheck, v ?? {}) as { Detach?: boolean; Tty?: boolean };
  return { Detach: o.Detach ?? false, ...(o.Tty !== undefined ? { Tty: o.Tty } : {}) };
}
