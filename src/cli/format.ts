/** Output helpers: Docker's tabular columns, Go-template-like `--format`, sizes and ages. */

/** Columns separated by at least three spaces, like docker's tabwriter output. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function lookup(obj: unknown, path: string): unknown {
  if (path === '.' || path === '') return obj;
  let cur: unknown = obj;
  for (const k of path.replace(/^\./, '').split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function show(v: unknown): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object')
    return `map[${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}:${show(x)}`)
      .join(' ')}]`;
  return String(v);
}

/** `{{.A.B}}`, `{{json .}}`, `{{json .A}}`, `{{index .Labels "k"}}`, `{{upper .X}}`/`{{lower .X}}`. */
export function renderTemplate(tpl: string, obj: unknown): string {
  return tpl
    .replace(/\\t/g, '\t')
    .replace(/\\n/g, '\n')
    .replace(/\{\{\s*(.*?)\s*\}\}/g, (_m, expr: string) => {
      const [fn, ...rest] = expr.split(/\s+/);
      if (fn === 'json') return JSON.stringify(lookup(obj, rest[0] ?? '.')) ?? 'null';
      if (fn === 'index')
        return show(
          (lookup(obj, rest[0] ?? '.') as Record<string, unknown> | undefined)?.[JSON.parse(rest[1] ?? '""') as string],
        );
      if (fn === 'upper') return show(lookup(obj, rest[0] ?? '.')).toUpperCase();
      if (fn === 'lower') return show(lookup(obj, rest[0] ?? '.')).toLowerCase();
      return show(lookup(obj, fn ?? '.'));
    });
}

/** `--format` output for a list: `table ...` gives a header row and columns; otherwise one line each. */
export function formatList(format: string, items: Array<Record<string, unknown>>): string {
  if (format === 'json') return items.map((i) => JSON.stringify(i)).join('\n') + (items.length ? '\n' : '');
  if (format.startsWith('table')) {
    const tpl = format.slice(5).trim();
    const header = tpl.replace(/\{\{\s*\.?(\w+)\s*\}\}/g, (_m, k: string) =>
      k.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase(),
    );
    return table([header.split('\t'), ...items.map((i) => renderTemplate(tpl, i).split('\t'))]);
  }
  return items.map((i) => renderTemplate(format, i) + '\n').join('');
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)}${units[i]}`.replace(
    /\.0+([a-zA-Z])/,
    '$1',
  );
}

export function binarySize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2).replace(/\.?0+$/, '')}${units[i]}`;
}

export function ago(unixSeconds: number): string {
  const s = Math.max(0, Math.floor(Date.now() / 1000 - unixSeconds));
  if (s < 60) return s <= 1 ? 'Less than a second ago' : `${s} seconds ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return m === 1 ? 'About a minute ago' : `${m} minutes ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return h === 1 ? 'About an hour ago' : `${h} hours ago`;
  const d = Math.floor(h / 24);
  if (d < 14) return `${d} days ago`;
  if (d < 60) return `${Math.floor(d / 7)} weeks ago`;
  if (d < 730) return `${Math.floor(d / 30)} months ago`;
  return `${Math.floor(d / 365)} years ago`;
}

/** `512m`, `1g`, `100k`, `1024` -> bytes (Docker's RAMInBytes). */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(s.trim());
  if (!m) throw new Error(`invalid size: '${s}'`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[
    m[2]!.toLowerCase() as '' | 'k'
  ];
  return Math.round(Number(m[1]) * mult);
}
