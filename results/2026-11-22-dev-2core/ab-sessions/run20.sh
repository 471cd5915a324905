#!/usr/bin/env bash
# Like run.sh with 20 rounds per session: 10 unchanged, 10 with the current
# side slowed 10%. Usage: run20.sh OUT_DIR (binary at OUT_DIR/cachescope).
set -euo pipefail
out=${1:?usage: run20.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
suite="$here/../../../workloads/bench/ci.toml"
bin="$out/cachescope"
for i in $(seq -w 1 10); do
  for kind in same slow10; do
    knob=""; [ "$kind" = slow10 ] && knob=0.10
    echo "$(date +%T) $kind-$i (knob $knob) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/run.log"
    CACHESCOPE_TEST_SLOWDOWN=$knob "$bin" bench "$suite" --out "$out/$kind-$i-cur.json" \
      --ab-baseline "$bin" --ab-out "$out/$kind-$i-base.json" --rounds 20 --quiet
  done
done
