/**
 * What can go wrong in the registry, in its own words: a closed set of faults, each a BerthError
 * (so its category is known everywhere) with the kind of fault the distribution spec names. No
 * HTTP status here: http.ts alone maps a fault to the status and the spec's error code.
 */
import { BerthError, codeOfErrno, type ErrorCode } from '../base/errors.js';

const CATEGORY = {
  NAME_INVALID: 'InvalidArgument',
  NAME_UNKNOWN: 'NotFound',
  MANIFEST_UNKNOWN: 'NotFound',
  MANIFEST_INVALID: 'InvalidArgument',
  MANIFEST_BLOB_UNKNOWN: 'FailedPrecondition',
  MANIFEST_TOO_LARGE: 'InvalidArgument',
  DIGEST_INVALID: 'InvalidArgument',
  BLOB_UNKNOWN: 'NotFound',
  BLOB_UPLOAD_UNKNOWN: 'NotFound',
  RANGE_INVALID: 'InvalidArgument',
  SIZE_INVALID: 'InvalidArgument',
  PAGINATION_INVALID: 'InvalidArgument',
  UNAUTHORIZED: 'Unauthorized',
  DENIED: 'PermissionDenied',
  NO_ROUTE: 'NotFound',
  NOT_SERVED: 'NotImplemented',
  METHOD_NOT_ALLOWED: 'InvalidArgument',
  DELETE_DISABLED: 'FailedPrecondition',
} as const satisfies Record<string, ErrorCode>;

export type FaultKind = keyof typeof CATEGORY;

export class RegistryFault extends BerthError {
  constructor(
    readonly kind: FaultKind,
    message: string,
    /** the spec's `detail` (e.g. the digests a manifest lacks), or an auth challenge */
    readonly detail?: { challenge?: string } | Record<string, unknown>,
  ) {
    super(CATEGORY[kind], message);
  }
}

export const fault = (kind: FaultKind, message: string, detail?: RegistryFault['detail']) =>
  new RegistryFault(kind, message, detail);

/** A file that is not there: an absence, not a failure (ENOTDIR, a file where a directory should be, is a failure). */
export const isAbsent = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT';
};

/**
 * A failed filesystem call that is not an absence: a BerthError of errno's category (EACCES,
 * EIO: never "not found"), naming what the registry was doing.
 */
export function storageFailure(e: unknown, what: string): BerthError {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  return new BerthError(code ? codeOfErrno(code) : 'Internal', `registry storage: ${what}: ${msg}`, { cause: e });
}

/** `p`'s value, or `absent` when the file is not there; any other failure is thrown, categorized. */
export async function unlessAbsent<T, A>(p: Promise<T>, absent: A, what: string): Promise<T | A> {
  try {
    return await p;
  } catch (e) {
    if (isAbsent(e)) return absent;
    throw storageFailure(e, what);
  }
}
