/**
 * A runtime that could not start a container's or an exec's process fails with a `StartFailure`:
 * a BerthError (InvalidArgument, dockerd's wording) that also says, as a type, why: the command
 * does not exist (exit code 127), it may not be run (126), or something else. The runtime's own
 * words (crun's, runc's, conmon's) are read once, here, where they enter berth; callers look at
 * `reason` and never at the message.
 */
import { BerthError } from '../base/errors.js';

export type StartFailureReason = 'not-found' | 'permission-denied' | 'other';

export class StartFailure extends BerthError {
  constructor(
    readonly reason: StartFailureReason,
    message: string,
    cause?: unknown,
  ) {
    super('InvalidArgument', message, { cause });
  }
}

/**
 * The exit code a failed start or exec ends with, as dockerd gives it: 127 when the command was
 * not found, 126 when it may not be run, else `otherwise`.
 */
export function exitCodeOfStartFailure(e: unknown, otherwise: number): number {
  if (!(e instanceof StartFailure)) return otherwise;
  return e.reason === 'not-found' ? 127 : e.reason === 'permission-denied' ? 126 : otherwise;
}

/**
 * Whether a runtime's own failure text says the command to run does not exist (crun's and runc's
 * wordings). Only for reading the runtime's output as it arrives (`runtimeError`).
 */
export const isCommandNotFound = (message: string): boolean =>
  /executable file .*not found|exec: "[^"]*": .*(not found|no such file)/i.test(message);

const isPermissionDenied = (message: string): boolean => /permission denied/i.test(message);

/** The runtime's failure text, made readable, carrying Docker's phrases clients look for, typed. */
export function runtimeError(message: string, op: 'create' | 'exec' = 'create'): StartFailure {
  const clean = message.replace(/\s+/g, ' ').trim();
  const prefix =
    op === 'exec'
      ? 'OCI runtime exec failed: exec failed'
      : 'failed to create task for container: OCI runtime create failed';
  // runc reports through logrus, which escapes the quotes of its message (`exec: \"/x\": stat ...`)
  const plain = clean.replace(/\\"/g, '"');
  if (isCommandNotFound(plain)) {
    const cmd = /`([^`]+)`/.exec(plain)?.[1] ?? /exec: "([^"]+)"/.exec(plain)?.[1];
    const phrase = cmd ? `: exec: "${cmd}": executable file not found in $PATH: no such file or directory` : '';
    return new StartFailure('not-found', `${prefix}: ${clean}${phrase}`);
  }
  if (isPermissionDenied(plain)) return new StartFailure('permission-denied', `${prefix}: ${clean}: permission denied`);
  return new StartFailure('other', `${prefix}: ${clean}`);
}
