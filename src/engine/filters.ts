/** Docker's `filters` as front doors parse them (key -> values), and the label rule every list shares. */
export type Filters = Record<string, string[]>;

/** `label=key` or `label=key=value` against a label map. */
export function labelsMatch(wanted: string[] | undefined, labels: Record<string, string>): boolean {
  if (!wanted) return true;
  return wanted.every((w) => {
    const i = w.indexOf('=');
    return i < 0 ? w in labels : labels[w.slice(0, i)] === w.slice(i + 1);
  });
}
