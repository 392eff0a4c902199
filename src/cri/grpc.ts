/**
 * gRPC plumbing of the CRI server: handlers are async functions of the decoded request; a thrown
 * BerthError becomes its gRPC status (the one map from berth's codes to gRPC's, for this front
 * door), anything else INTERNAL. Nothing a request does can end the daemon.
 */
import { status, type ServerUnaryCall, type sendUnaryData, type ServerWritableStream } from '@grpc/grpc-js';
import { BerthError, errorMessage, type ErrorCode } from '../base/errors.js';
import { log } from '../base/log.js';

const CODES: Record<ErrorCode, status> = {
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  InvalidArgument: status.INVALID_ARGUMENT,
  Conflict: status.FAILED_PRECONDITION,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unauthorized: status.UNAUTHENTICATED,
  PermissionDenied: status.PERMISSION_DENIED,
  Unavailable: status.UNAVAILABLE,
  NotImplemented: status.UNIMPLEMENTED,
  Internal: status.INTERNAL,
};

/** An error with a gRPC status of its own (DEADLINE_EXCEEDED has no BerthError code). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export const unimplemented = (what: string, why: string) =>
  new GrpcStatusError(status.UNIMPLEMENTED, `${what} is not implemented by berth: ${why}`);

function toStatus(e: unknown): { code: status; details: string } {
  if (e instanceof GrpcStatusError) return { code: e.code, details: e.message };
  if (e instanceof BerthError) return { code: CODES[e.code], details: e.message };
  return { code: status.INTERNAL, details: errorMessage(e) };
}

type Unary = (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => void;
type Streaming = (call: ServerWritableStream<unknown, unknown>) => void;

export function unary<Req>(name: string, fn: (req: Req) => Promise<object>): Unary {
  return (call, cb) => {
    const t0 = performance.now();
    fn(call.request as Req).then(
      (res) => {
        log.debug('cri call', { method: name, ms: +(performance.now() - t0).toFixed(1) });
        cb(null, res);
      },
      (e: unknown) => {
        const s = toStatus(e);
        if (s.code === status.INTERNAL || s.code === status.UNKNOWN)
          log.warn('cri call failed', { method: name, err: s.details });
        else log.debug('cri call refused', { method: name, code: s.code, err: s.details });
        cb({ code: s.code, details: s.details });
      },
    );
  };
}

/** A server stream: `fn` writes until it resolves; the call's cancellation aborts its signal. */
export function streaming<Req>(
  name: string,
  fn: (req: Req, write: (msg: object) => void, signal: AbortSignal) => Promise<void>,
): Streaming {
  return (call) => {
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    call.on('close', () => ac.abort());
    fn(call.request as Req, (m) => call.write(m), ac.signal).then(
      () => call.end(),
      (e: unknown) => {
        const s = toStatus(e);
        log.debug('cri stream ended', { method: name, code: s.code, err: s.details });
        call.destroy(Object.assign(new Error(s.details), { code: s.code, details: s.details }));
      },
    );
  };
}

export type Filter<T> = { filter: T | null };

/** A Stream* RPC: what its List* twin answers, in lists of at most 256 items (none when there is none). */
export function asStream<Req>(name: string, list: (r: Req) => Promise<object>, from: string, to: string) {
  return streaming<Req>(name, async (r, write) => {
    const items = ((await list(r)) as Record<string, unknown[] | undefined>)[from] ?? [];
    for (let i = 0; i < items.length; i += 256) write({ [to]: items.slice(i, i + 256) });
  });
}
