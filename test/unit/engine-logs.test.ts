import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LogParser, readLogs, timeToNs, nsToTime, parseUnixTime, type LogLine } from '../../src/engine/logs.js';

const sample = [
  '2026-01-01T00:00:01.000000001Z stdout F one',
  '2026-01-01T00:00:02.5Z stderr F err',
  '2026-01-01T00:00:03Z stdout P par',
  '2026-01-01T00:00:03.1Z stdout F tial',
  '2026-01-01T00:00:04Z stdout F four',
  '',
].join('\n');

test('k8s-file records become lines; partial records are joined; streams kept apart', () => {
  const out: LogLine[] = [];
  const p = new LogParser();
  const buf = Buffer.from(sample);
  p.push(buf.subarray(0, 17), (l) => out.push(l)); // split mid-record
  p.push(buf.subarray(17), (l) => out.push(l));
  assert.deepEqual(
    out.map((l) => [l.stream, l.text]),
    [
      ['stdout', 'one\n'],
      ['stderr', 'err\n'],
      ['stdout', 'partial\n'],
      ['stdout', 'four\n'],
    ],
  );
});

test('timestamps with nanoseconds; offsets normalized to Z like Docker', () => {
  assert.equal(nsToTime(timeToNs('2026-01-01T01:00:00.120000000+01:00')), '2026-01-01T00:00:00.12Z');
  assert.equal(timeToNs('1970-01-01T00:00:01.000000002Z'), 1_000_000_002n);
  assert.equal(parseUnixTime('2.5'), 2_500_000_000n);
});

test('readLogs: tail, since, stream selection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logs-'));
  try {
    const f = join(dir, 'ctr.log');
    writeFileSync(f, sample);
    const read = async (q: Partial<Parameters<typeof readLogs>[1]>) => {
      const out: string[] = [];
      await readLogs(
        f,
        { stdout: true, stderr: true, tail: -1, sinceNs: 0n, untilNs: 0n, timestamps: false, follow: false, ...q },
        (l) => out.push(l.text),
        () => false,
        new AbortController().signal,
      );
      return out.join('');
    };
    assert.equal(await read({}), 'one\nerr\npartial\nfour\n');
    assert.equal(await read({ tail: 1 }), 'four\n');
    assert.equal(await read({ stderr: false, tail: 2 }), 'partial\nfour\n');
    assert.equal(
      await read({ sinceNs: parseUnixTime(String(Date.parse('2026-01-01T00:00:02Z') / 1000)) }),
      'err\npartial\nfour\n',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readLogs: output after the last newline is shown as it is (dockerd: `printf no-newline` comes last)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-logs-'));
  try {
    const path = join(dir, 'ctr.log');
    writeFileSync(
      path,
      [
        '2026-01-01T00:00:01Z stdout F a',
        '2026-01-01T00:00:02Z stdout P c',
        '2026-01-01T00:00:02.1Z stdout F ',
        '2026-01-01T00:00:03Z stdout P no-newline',
        '',
      ].join('\n'),
    );
    const q = { stdout: true, stderr: true, tail: -1, sinceNs: 0n, untilNs: 0n, timestamps: false, follow: false };
    const read = async (o: Partial<typeof q>, running = false) => {
      const out: string[] = [];
      await readLogs(
        path,
        { ...q, ...o },
        (l) => out.push(l.text),
        () => running,
        new AbortController().signal,
      );
      return out;
    };
    assert.deepEqual(await read({}), ['a\n', 'c\n', 'no-newline']);
    assert.deepEqual(await read({ tail: 1 }), ['no-newline']);
    assert.deepEqual(await read({ follow: true }), ['a\n', 'c\n', 'no-newline'], 'a stopped container, followed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
