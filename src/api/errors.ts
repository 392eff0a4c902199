/** The ONE place where error codes become HTTP statuses. */
import { BerthError, assertNever, type ErrorCode } from '../base/errors.js';

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'NotFound':
      return 404;
    case 'AlreadyExists':
    case 'Conflict':
      return 409;
    case 'InvalidArgument':
      return 400;
    case 'FailedPrecondition':
      return 409;
    case 'Unauthorized':
      return 401;
    case 'PermissionDenied':
      return 403;
    case 'Unavailable':
      return 503;
    case 'NotImplemented':
      return 501;
    case 'Internal':
      return 500;
    default:
      return assertNever(code);
  }
}

/** Any thrown value -> (status, Docker's JSON error body). */
export function errorResponse(e: unknown): { status: number; body: { message: string } } {
  if (e instanceof BerthError) return { status: statusOf(e.code), body: { message: e.message } };
  if (e instanceof SyntaxError) return { status: 400, body: { message: `invalid JSON: ${e.message}` } };
  return { status: 500, body: { message: e instanceof Error ? e.message : String(e) } };
}
