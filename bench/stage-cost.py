#!/usr/bin/env python3
# The staging of --rootfs-mountns alone (issue #19): CPU (user+sys, wait4's rusage: the process and
# what it waited for) of exec'ing a program directly, through busybox's unshare + sh + mount (the
# fallback) and through /usr/local/lib/berth/berth-stage, alternated, N runs each (argv[1], 100):
# one tmpfs mount at /tmp/nsh-micro/t, "mounted" read on fd 6, "go" written, the program exec'd.
# `sudo python3 bench/stage-cost.py 200`. Ratios only on a loaded machine.
import os, sys, time, subprocess, resource
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
T = '/tmp/nsh-micro/t'
os.makedirs(T, exist_ok=True)
BB = '/bin/busybox'
SCRIPT = '\n'.join([
  't=$1; n=$2; shift 2',
  'while [ "$n" -gt 0 ]; do %s mount -t "$1" -o "$2" -- "$3" "$t" || exit 125; shift 3; n=$((n-1)); done' % BB,
  'echo mounted >&6; exec 6>&-',
  'read -r go || exit 125',
  '[ "$go" = go ] || exit 125',
  'exec "$@" </dev/null',
])
rest = [T, '1', 'tmpfs', 'size=1m,mode=0755', 'tmpfs', '/bin/sleep', '0']
variants = {
  'direct': ['/bin/sleep', '0'],
  'shell': [BB, 'unshare', '-m', '--propagation', 'slave', '--', BB, 'sh', '-c', SCRIPT, 'sh'] + rest,
  'helper': ['/usr/local/lib/berth/berth-stage', 'stage'] + rest,
}
def once(argv, staged):
  r6, w6 = os.pipe()
  r0, w0 = os.pipe()
  pid = os.fork()
  if pid == 0:
    os.dup2(r0, 0); os.dup2(w6, 6)
    for f in (r0, w0, r6, w6):
      if f not in (0, 6): os.close(f)
    os.execv(argv[0], argv)
  os.close(r0); os.close(w6)
  if staged:
    assert os.read(r6, 100).startswith(b'mounted'), 'no report'
  os.write(w0, b'go\n'); os.close(w0); os.close(r6)
  _, st, ru = os.wait4(pid, 0)
  assert os.waitstatus_to_exitcode(st) == 0, (argv, st)
  return ru.ru_utime + ru.ru_stime
tot = {k: 0.0 for k in variants}
for i in range(N):
  for k, argv in variants.items():
    tot[k] += once(argv, k != 'direct')
print('load', open('/proc/loadavg').read().split()[:3], 'N', N)
for k in variants:
  print('%-7s %.2f ms CPU per run' % (k, tot[k] / N * 1000))
print('shell-direct %.2f ms, helper-direct %.2f ms' % ((tot['shell']-tot['direct'])/N*1000, (tot['helper']-tot['direct'])/N*1000))
