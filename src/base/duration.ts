/** Go's duration syntax (`30s`, `1m30s`, `500ms`, `1.5h`), as Docker's flags and HEALTHCHECK take it. */
const UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Nanoseconds, or null when `s` is not a duration. */
export function goDurationNs(s: string): number | null {
  if (!s) return null;
  if (s === '0') return 0;
  let total = 0;
  let rest = s;
  while (rest) {
    // \u00b5 (µ) escaped: a non-ASCII character makes the CLI's whole bundle a two-byte string for V8
    const m = /^(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}
