#!/usr/bin/env bash
# The false-alarm measurement: the same binary benchmarked 10 times on this
# machine (the CI suite, 10 repetitions each), then 3 more times at each
# injected slowdown (the test-only knob CACHESCOPE_TEST_SLOWDOWN: 5, 10, 20,
# 30% of busy work added to every timed sample). summarize.py compares them.
#
#   bash results/2026-11-22-dev-2core/false-alarms/run.sh /tmp/fa
#   python3 results/2026-11-22-dev-2core/false-alarms/summarize.py /tmp/fa /tmp/fa/cachescope \
#       > results/2026-11-22-dev-2core/false-alarms/summary.md
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:?usage: run.sh OUT_DIR}
mkdir -p "$out"
# A private copy: other builds in this checkout must not swap the binary mid-run.
cp target/release/cachescope "$out/cachescope"
bin="$out/cachescope"
for i in $(seq -w 1 10); do
  "$bin" bench workloads/bench/ci.toml --out "$out/same-$i.json" --quiet
  echo "same-$i done $(date +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
for pct in 05 10 20 30; do
  for i in 1 2 3; do
    CACHESCOPE_TEST_SLOWDOWN="0.$pct" "$bin" bench workloads/bench/ci.toml --out "$out/slow$pct-$i.json" --quiet 2>/dev/null
    echo "slow$pct-$i done $(date +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
