/**
 * One error root for all of berth. `code` is a closed set; only api/ maps codes to HTTP
 * statuses (api/errors.ts). Wrap, don't replace: keep the category, add the noun and the id.
 */
export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'Conflict'
  | 'FailedPrecondition'
  | 'Unauthorized'
  | 'PermissionDenied'
  | 'Unavailable'
  | 'NotImplemented'
  | 'Internal';

export class BerthError extends Error {
  override readonly name = 'BerthError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const notFound = (msg: string, cause?: unknown) => new BerthError('NotFound', msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new BerthError('AlreadyExists', msg, { cause });
export const invalidArgument = (msg: string, cause?: unknown) => new BerthError('InvalidArgument', msg, { cause });
export const conflict = (msg: string, cause?: unknown) => new BerthError('Conflict', msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) =>
  new BerthError('FailedPrecondition', msg, { cause });
export const permissionDenied = (msg: string, cause?: unknown) => new BerthError('PermissionDenied', msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new BerthError('Unavailable', msg, { cause });
export const notImplemented = (msg: string, cause?: unknown) => new BerthError('NotImplemented', msg, { cause });
export const internal = (msg: string, cause?: unknown) => new BerthError('Internal', msg, { cause });

export function isBerthError(e: unknown, code?: ErrorCode): e is BerthError {
  return e instanceof BerthError && (code === undefined || e.code === code);
}

/**
 * The category of a failed system call, from errno's name: the caller's noun and id make the
 * message; the category decides the status a front door answers with.
 */
export function codeOfErrno(name: string): ErrorCode {
  switch (name) {
    case 'ENOENT':
    case 'ESRCH':
      return 'NotFound';
    case 'EEXIST':
      return 'AlreadyExists';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'PermissionDenied';
    case 'EINVAL':
    case 'ENAMETOOLONG':
    case 'ELOOP':
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EXDEV':
      return 'InvalidArgument';
    case 'EBUSY':
    case 'ENOTEMPTY':
      return 'Conflict';
    case 'ENOSYS':
    case 'EOPNOTSUPP':
    case 'ENOTSUP':
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EAGAIN':
      return 'Unavailable';
    default:
      return 'Internal';
  }
}

/** Message of any thrown value, for logs and wrapped errors. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Adds context to an error while keeping its category (non-berth errors become Internal). */
export function wrap(e: unknown, context: string): BerthError {
  const code: ErrorCode = e instanceof BerthError ? e.code : 'Internal';
  return new BerthError(code, `${context}: ${errorMessage(e)}`, { cause: e });
}

export function assertNever(x: never): never {
  throw internal(`unexpected value: ${JSON.stringify(x)}`);
}
