/**
 * The registry's HTTP layer: responses, bounded bodies, pagination, and the ONE map from what went
 * wrong (errors.ts: a RegistryFault's kind, or any other error) to an HTTP status and the spec's
 * JSON error `{"errors":[{"code","message","detail"}]}`. The resource files (routes/) throw faults
 * and never name a status for an error.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { RegistryError, type RegistryErrorCode } from '../spec/distribution.js';
import { fault, RegistryFault, type FaultKind } from './errors.js';

/** One request to a repository-scoped endpoint. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  /** the repository name, as in the path */
  name: string;
  /** the path's last part (a tag, digest or upload id), decoded */
  ref: string;
  query: URLSearchParams;
  /** scheme://host of this registry, for challenges */
  base: string;
}

export const COMMON = { 'Docker-Distribution-API-Version': 'registry/2.0' };

type Headers = Record<string, string | number>;

export function send(
  res: ServerResponse,
  status: number,
  headers: Headers = {},
  body?: string | Buffer,
  head = false,
): void {
  const h: Headers = { ...COMMON, ...headers };
  if (body !== undefined) h['Content-Length'] ??= Buffer.byteLength(body);
  else h['Content-Length'] ??= 0;
  res.writeHead(status, h);
  res.end(head ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, v: unknown, headers: Headers = {}): void {
  send(res, status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(v));
}

/**
 * Reads a bounded body. Too large is refused, but the rest is still read and dropped (resetting
 * the connection mid-send would lose the error response on the client's side).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => fault('MANIFEST_TOO_LARGE', `manifest larger than ${limit} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge(); // the caller drains it
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n <= limit) parts.push(c as Buffer);
  }
  if (n > limit) throw tooLarge();
  return Buffer.concat(parts);
}

/** Reads `n` and `last` for tags/list and _catalog, and pages `all` (sorted). */
export function paginate(all: string[], q: URLSearchParams, path: string): { page: string[]; link?: string } {
  const nRaw = q.get('n');
  const last = q.get('last');
  let list = last ? all.filter((t) => t > last) : all;
  if (nRaw === null || nRaw === '') return { page: list };
  const n = Number(nRaw);
  if (!Number.isInteger(n) || n < 0) throw fault('PAGINATION_INVALID', `invalid n: ${nRaw}`);
  const more = list.length > n;
  list = list.slice(0, n);
  if (!more || !list.length) return { page: list };
  return { page: list, link: `<${path}?n=${n}&last=${encodeURIComponent(list[list.length - 1]!)}>; rel="next"` };
}

/** A fault's HTTP status and the spec's error code (distribution-spec "Error Codes"). */
const HTTP: Record<FaultKind, [number, RegistryErrorCode]> = {
  NAME_INVALID: [400, 'NAME_INVALID'],
  NAME_UNKNOWN: [404, 'NAME_UNKNOWN'],
  MANIFEST_UNKNOWN: [404, 'MANIFEST_UNKNOWN'],
  MANIFEST_INVALID: [400, 'MANIFEST_INVALID'],
  MANIFEST_BLOB_UNKNOWN: [400, 'MANIFEST_BLOB_UNKNOWN'],
  MANIFEST_TOO_LARGE: [413, 'SIZE_INVALID'],
  DIGEST_INVALID: [400, 'DIGEST_INVALID'],
  BLOB_UNKNOWN: [404, 'BLOB_UNKNOWN'],
  BLOB_UPLOAD_UNKNOWN: [404, 'BLOB_UPLOAD_UNKNOWN'],
  RANGE_INVALID: [416, 'BLOB_UNKNOWN'],
  SIZE_INVALID: [400, 'SIZE_INVALID'],
  PAGINATION_INVALID: [400, 'UNSUPPORTED'],
  UNAUTHORIZED: [401, 'UNAUTHORIZED'],
  DENIED: [403, 'DENIED'],
  NO_ROUTE: [404, 'UNSUPPORTED'],
  NOT_SERVED: [404, 'UNSUPPORTED'],
  METHOD_NOT_ALLOWED: [405, 'UNSUPPORTED'],
  DELETE_DISABLED: [405, 'UNSUPPORTED'],
};

/**
 * The status of a spec error code spec/ threw (a manifest it refused to parse): the codes'
 * statuses in the distribution spec's table, 400 for those it leaves to the registry.
 */
const CODE_STATUS: Record<RegistryErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 400,
  TOOMANYREQUESTS: 429,
};

/**
 * Answers a failed request. A fault gets its status and code; a manifest spec/ refused to parse
 * (a RegistryError: a code of the spec's closed set, no status) gets its code's status here;
 * anything else is the registry's own failure: 500 UNKNOWN, logged.
 */
export function fail(res: ServerResponse, e: unknown, req: IncomingMessage): void {
  req.resume(); // drain an unread body so the connection can be reused
  if (res.headersSent) return void res.destroy();
  let answer: { status: number; code: RegistryErrorCode; detail?: unknown } | null = null;
  if (e instanceof RegistryFault) {
    const [status, code] = HTTP[e.kind];
    answer = { status, code, detail: e.detail };
  } else if (e instanceof RegistryError) answer = { status: CODE_STATUS[e.code], code: e.code, detail: e.detail };
  if (!answer) {
    log.error('registry request failed', { method: req.method, url: req.url, err: errorMessage(e) });
    return sendJson(res, 500, { errors: [{ code: 'UNKNOWN', message: errorMessage(e) }] });
  }
  const headers: Record<string, string> = {};
  const challenge = (answer.detail as { challenge?: string } | undefined)?.challenge;
  if (challenge) headers['WWW-Authenticate'] = challenge;
  const detail = challenge ? undefined : answer.detail;
  const message = (e as Error).message;
  const body = { errors: [{ code: answer.code, message, ...(detail !== undefined ? { detail } : {}) }] };
  if (req.method === 'HEAD') return send(res, answer.status, { 'Content-Type': 'application/json', ...headers });
  sendJson(res, answer.status, body, headers);
}
