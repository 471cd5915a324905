#!/usr/bin/env bash
# A/B sessions of one binary against itself: 10 with no change (false
# alarms), 10 with the current side slowed 10%, 10 slowed 5%, 5 slowed 20%
# (the test-only knob CACHESCOPE_TEST_SLOWDOWN reaches the current side only).
# Usage: run.sh OUT_DIR   (the binary is OUT_DIR/cachescope, copied there first)
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
suite="$here/../../../workloads/bench/ci.toml"
bin="$out/cachescope"
session() { # name knob
  local name=$1 knob=$2
  echo "$(date +%T) $name (knob $knob) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/run.log"
  CACHESCOPE_TEST_SLOWDOWN=$knob "$bin" bench "$suite" --out "$out/$name-cur.json" \
    --ab-baseline "$bin" --ab-out "$out/$name-base.json" --rounds 10 --quiet
}
for i in $(seq -w 1 10); do
  session same-$i ""
  session slow10-$i 0.10
  session slow05-$i 0.05
  if [ "$i" -le 5 ]; then session slow20-$i 0.20; fi
done
