/**
 * `GET /images/search`: the v1 search API of an index (Docker Hub's `index.docker.io`, or the
 * registry a term names: `127.0.0.1:5000/foo`), as dockerd 20.10 asks it and words its failures.
 */
import { internal, invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { registryHostOf } from '../spec/distribution.js';
import { endpointOf, type ClientOptions, type Credentials } from './client.js';

/** One result, in dockerd's field order. */
export interface SearchResult {
  star_count: number;
  is_official: boolean;
  name: string;
  is_automated: boolean;
  description: string;
}

const MAX_RESPONSE = 4 << 20;
const TIMEOUT_MS = 30_000;

/** The index a term names and the term to send it (dockerd's splitReposSearchTerm). */
function indexOf(term: string, o: ClientOptions): { base: string; q: string } {
  const host = registryHostOf(term);
  if (!host) return { base: 'https://index.docker.io', q: term.replace(/^library\//, '') };
  return { base: endpointOf(`${host}/x`, o).base, q: term.slice(host.length + 1) };
}

export async function searchIndex(
  term: string,
  limit: number,
  o: { creds: Credentials | null; client?: ClientOptions },
): Promise<SearchResult[]> {
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw invalidArgument(`Limit ${limit} is outside the range of [1, 100]`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(term))
    throw invalidArgument(`invalid repository name: repository name (${term}) should not have a scheme`);
  const { base, q } = indexOf(term, o.client ?? {});
  const url = `${base}/v1/search?q=${encodeURIComponent(q)}&n=${limit}`;
  const headers: Record<string, string> = {};
  if (o.creds)
    headers['Authorization'] = `Basic ${Buffer.from(`${o.creds.username}:${o.creds.password}`).toString('base64')}`;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) }).catch((e: unknown) => {
    const cause = (e as { cause?: { message?: string } }).cause;
    throw internal(`Get "${url}": ${cause?.message ?? (e as Error).message}`); // dockerd: a 500
  });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw internal(`Unexpected status code ${res.status}`); // dockerd's words
  }
  const text = await res.text();
  if (text.length > MAX_RESPONSE) throw internal(`search response larger than ${MAX_RESPONSE} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw internal(`invalid search response: ${(e as Error).message}`);
  }
  const results = isObject(v) && Array.isArray(v['results']) ? v['results'] : [];
  return results.filter(isObject).map((r) => ({
    star_count: typeof r['star_count'] === 'number' ? r['star_count'] : 0,
    is_official: r['is_official'] === true,
    name: typeof r['name'] === 'string' ? r['name'] : '',
    is_automated: r['is_automated'] === true,
    description: typeof r['description'] === 'string' ? r['description'] : '',
  }));
}
