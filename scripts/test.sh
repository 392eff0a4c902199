#!/usr/bin/env bash
# The whole test suite: installs what is missing (no daemon is started: each test starts its
# own berthd with its own --root and socket), builds, then runs every node:test file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --no-run
export BERTH_FIXTURE=/var/cache/berth/fixtures/busybox.tar
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}"
