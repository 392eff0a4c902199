#!/usr/bin/env node
// bench/scale.sh's report: its JSON lines ({engine, key, value}) -> OUT.json and OUT.md, side by side.
import fs from 'node:fs';
import os from 'node:os';

const [resFile, out, n, nOther] = process.argv.slice(2);
// RES may name several runs' JSON lines, comma-separated (engines run apart, reported side by side)
const res = {};
const lines = resFile.split(',').flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean));
for (const line of lines) {
  const { engine, key, value } = JSON.parse(line);
  (res[engine] ??= {})[key] = value;
}
const doc = {
  date: new Date().toISOString(),
  host: { cpus: os.cpus().length, mem_gb: Math.round(os.totalmem() / 2 ** 30), kernel: os.release() },
  asked: { berthd: Number(n), others: Number(nOther) },
  engines: res,
};
fs.writeFileSync(`${out}.json`, JSON.stringify(doc, null, 2) + '\n');

const engines = Object.keys(res);
const mb = (kb) => (kb === undefined ? '' : (kb / 1024).toFixed(1));
const per = (e, kb) => {
  // a start cut short (its client stopped) reports nothing: the running count stands in
  const started = res[e]?.start?.started ?? res[e]?.count?.running ?? 0;
  return kb === undefined || !started ? '' : (kb / 1024 / started).toFixed(2);
};
const rows = [
  ['containers started (asked)', (e) => `${res[e].start?.started ?? 0} (${e === 'berthd' ? n : nOther})`],
  [
    'failed starts (first error)',
    (e) =>
      `${res[e].start?.failed ?? ''} ${res[e].start?.firstError ? `(${res[e].start.firstError.slice(0, 80)})` : ''}`,
  ],
  ['starts stopped by the bench (host floor)', (e) => res[e].start?.stoppedFor || 'no'],
  ['start: seconds, containers/s', (e) => `${res[e].start?.seconds ?? ''} s, ${res[e].start?.rate ?? ''}/s`],
  ['start: s at each 1,000', (e) => (res[e].start?.per1000 ?? []).join(', ')],
  ['running after start', (e) => res[e].count?.running ?? ''],
  ['new mount namespace (`unshare -m true`) ms', (e) => res[e].unshare_mount_ns_ms ?? ''],
  [
    'reading the mount table (/proc/mounts, KiB) ms',
    (e) =>
      res[e].read_mounts_ms === undefined
        ? ''
        : `${res[e].read_mounts_ms} (${Math.round((res[e].mounts_bytes ?? 0) / 1024)})`,
  ],
  ['`docker ps -q` ms', (e) => res[e].ps_cli_ms ?? ''],
  ['`docker ps -aq` ms', (e) => res[e].ps_a_cli_ms ?? ''],
  ['GET /containers/json ms (median)', (e) => res[e].ps_api?.median_ms ?? ''],
  ['`ps --filter name=` ms', (e) => res[e].ps_filter_name_cli_ms ?? ''],
  ['`ps --filter status=exited` ms', (e) => res[e].ps_filter_status_cli_ms ?? ''],
  ['`ps --filter label=` ms', (e) => res[e].ps_filter_label_cli_ms ?? ''],
  ['`docker inspect` one ms', (e) => res[e].inspect_cli_ms ?? ''],
  ['GET /containers/{name}/json ms', (e) => res[e].inspect_api?.median_ms ?? ''],
  ['`docker system df` ms', (e) => res[e].system_df_cli_ms ?? ''],
  ['GET /system/df ms', (e) => res[e].system_df_api?.median_ms ?? ''],
  ['start -> `start` event ms', (e) => res[e].events?.start_event_ms ?? ''],
  ['events history (last hour) ms', (e) => res[e].events?.history_hour_ms ?? ''],
  ['monitor PSS per container MB (conmon / shim)', (e) => per(e, res[e].monitors?.monitor_pss_kb)],
  ['container process PSS per container MB', (e) => per(e, res[e].monitors?.child_pss_kb)],
  [
    'monitor + process PSS per container MB',
    (e) => per(e, (res[e].monitors?.monitor_pss_kb ?? 0) + (res[e].monitors?.child_pss_kb ?? 0)),
  ],
  ['host MemAvailable drop per container MB (all told, noisy)', (e) => per(e, res[e].mem_available_delta_kb)],
  ['kernel Slab growth per container MB', (e) => per(e, res[e].slab_delta_kb)],
  ['unreclaimable slab growth per container MB', (e) => per(e, res[e].unreclaimable_slab_delta_kb)],
  [
    'slab caches grown most, KiB per container',
    (e) =>
      Object.entries(res[e].slab_caches_kb ?? {})
        .slice(0, 6)
        .map(([k, v]) => `${k} ${Math.round(v / Math.max(1, res[e].start?.started ?? 1))}`)
        .join(', '),
  ],
  ['daemon RSS MB', (e) => mb(res[e].daemon_rss_kb)],
  ['containerd RSS MB', (e) => mb(res[e].containerd_rss_kb)],
  ['daemon open files', (e) => res[e].daemon_fds ?? ''],
  ['kill -9, restart: /_ping ms', (e) => res[e].restart?.ping_ms ?? ''],
  ['kill -9, restart: all listed ms', (e) => res[e].restart?.listed_ms ?? ''],
  ['sample: same processes after restart', (e) => res[e].same_processes_after_restart ?? ''],
  ['witnesses attached, logs intact (of 3)', (e) => res[e].witnesses_attach_and_logs_ok ?? ''],
  ['remove all: s (failed)', (e) => `${res[e].remove?.seconds ?? ''} (${res[e].remove?.failed ?? ''})`],
  ['listed after removal', (e) => res[e].count_after_remove?.all ?? ''],
  [
    'left: cgroups / processes / dirs / netns / mounts',
    (e) => {
      const l = res[e].leftovers;
      return l ? `${l.cgroups} / ${l.processes} / ${l.dirs} / ${l.netns} / ${l.mounts}` : '';
    },
  ],
  ['load average before / after start', (e) => `${res[e].load_before ?? ''} / ${res[e].load_after_start ?? ''}`],
];
let md = `# scale bench ${doc.date}\n\n`;
md += `${doc.host.cpus} CPUs, ${doc.host.mem_gb} GiB, kernel ${doc.host.kernel}. Idle busybox \`sleep 1d\`, --network none, `;
md += `started through the API from persistent clients. berthd asked for ${n}, the others for ${nOther}.\n\n`;
md += `| | ${engines.join(' | ')} |\n|---|${engines.map(() => '---').join('|')}|\n`;
for (const [label, f] of rows) md += `| ${label} | ${engines.map((e) => String(f(e))).join(' | ')} |\n`;
fs.writeFileSync(`${out}.md`, md);
process.stdout.write(md);
