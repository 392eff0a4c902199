/**
 * The Engine API versions berthd serves and every place where an older version has other
 * semantics: the ONE table of version gates. A route asks `gates(ctx.version).x`, never
 * compares versions itself.
 *
 * The range is dockerd 20.10's at the bottom (it accepts down to 1.12) and API 1.45 at the top.
 * What dockerd 20.10 answers (measured on /usr/sbin/dockerd 20.10.24):
 *   /v1.11/version -> 400 text/plain "client version 1.11 is too old. Minimum supported API version
 *                     is 1.12, please upgrade your client to a newer version"
 *   /v1.42/version -> 400 {"message":"client version 1.42 is too new. Maximum supported API version is 1.41"}
 *   /v1/version    -> 400 "client version 1 is too old. ..."; /v1.41.0, /v01.41, /v1.041 are 1.41
 *   /vabc/version  -> 404 {"message":"page not found"} (not a version prefix, so not a route)
 */

export const API_VERSION = '1.45';
export const MIN_API_VERSION = '1.12';

/** dockerd's versions.compare: dot-separated integers, missing parts are 0 (`1.041` = `1.41`, `1.41.0` = `1.41`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = Number.parseInt(pa[i] ?? '0', 10) || 0;
    const y = Number.parseInt(pb[i] ?? '0', 10) || 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/** A `/v{version}/...` prefix as dockerd's router reads it: digits and dots. */
export const VERSION_PREFIX = /^\/v([0-9.]+)(\/.*)?$/;

/** Why a version in the URL is refused, in dockerd's words, or null when it is served. */
export function versionRefusal(v: string): string | null {
  if (compareVersions(v, API_VERSION) > 0)
    return `client version ${v} is too new. Maximum supported API version is ${API_VERSION}`;
  if (compareVersions(v, MIN_API_VERSION) < 0)
    return `client version ${v} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`;
  return null;
}

/** Every behaviour that depends on the request's API version (dockerd 20.10's gates, moby's api/server/router). */
export interface VersionGates {
  /**
   * < 1.24: error bodies are plain text (`http.Error`: the message and a newline, text/plain),
   * not `{"message": ...}` (dockerd: /v1.23/containers/nope/json -> 404 "No such container: nope\n").
   */
  plainTextErrors: boolean;
  /**
   * < 1.24: `POST /containers/{id}/start` takes a HostConfig in its body, which replaces the
   * container's before it starts. From 1.24 a body longer than 7 bytes is refused (400).
   */
  hostConfigOnStart: boolean;
  /** < 1.24: `POST /containers/{id}/copy` ({"Resource": path} -> a tar). From 1.24: an empty 404. */
  containerCopy: boolean;
  /** < 1.25: `HostConfig.AutoRemove` at create is ignored (the client removed the container itself). */
  ignoreAutoRemove: boolean;
  /** >= 1.42: `volumes/prune` removes only anonymous volumes unless `all=true`. */
  volumePruneAnonymousOnly: boolean;
}

export function gates(version: string): VersionGates {
  const before = (v: string) => compareVersions(version, v) < 0;
  return {
    plainTextErrors: before('1.24'),
    hostConfigOnStart: before('1.24'),
    containerCopy: before('1.24'),
    ignoreAutoRemove: before('1.25'),
    volumePruneAnonymousOnly: !before('1.42'),
  };
}

/** dockerd's refusal of a start body from API 1.24 on (its own words, "v1.22" included). */
export const START_BODY_REMOVED =
  'starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24';
