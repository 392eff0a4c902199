/** Docker's `filters` query parameter: JSON `{"key": ["v1", ...]}` or legacy `{"key": {"v1": true}}`. */
import { invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';

import type { Filters } from '../engine/filters.js';

export type { Filters };

export function parseFilters(raw: string | null): Filters {
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw invalidArgument(`invalid filter: ${raw}`);
  }
  // the Go SDK sends `filters=null` for no filters; Go decodes null into a nil map: no filter
  if (v === null) return {};
  if (!isObject(v)) throw invalidArgument('invalid filter: expected an object');
  const out: Filters = {};
  for (const [k, val] of Object.entries(v)) {
    // dockerd's filters.Args: map[string][]string, or the legacy map[string]map[string]bool
    if (val === null) continue; // a nil list or map: no value
    if (Array.isArray(val) && val.every((x) => typeof x === 'string')) out[k] = val;
    else if (isObject(val) && Object.values(val).every((x) => typeof x === 'boolean'))
      out[k] = Object.keys(val).filter((x) => val[x] === true);
    else throw invalidArgument(`invalid filter '${k}'`);
  }
  return out;
}

export { labelsMatch } from '../engine/filters.js';
