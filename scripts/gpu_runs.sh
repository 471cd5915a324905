#!/usr/bin/env bash
# GPU replay experiments for the H100/H200 machines (issue 4).
#
# The GPU machines have no Rust toolchain and no Vulkan loader. Prepare on a
# Debian x86-64 build machine, in the repository root:
#
#   cargo build --release -p cachescope-harness
#   mkdir -p .gpu-bin/lib && cp target/release/cachescope .gpu-bin/
#   (cd /tmp && apt-get download libvulkan1 libglvnd0 \
#      && for d in libvulkan1_*.deb libglvnd0_*.deb; do dpkg-deb -x "$d" /tmp/vkroot; done)
#   cp -a /tmp/vkroot/usr/lib/x86_64-linux-gnu/. .gpu-bin/lib/
#
# and carry `.gpu-bin` to the device machine. There, from the repository
# root (the traces are in workloads/traces/):
#
#   OUT=/some/dir scripts/gpu_runs.sh [replay|replay-resnet|replay-gpt2|coldwarm|tiers|record|overhead|all]
#
# Every step writes JSON results and the printed tables under $OUT, and
# prints a short table last. Steps are sized to fit one 10-minute command
# each on an H100 (run `replay-resnet` and `replay-gpt2` as separate
# commands if one `replay` does not fit).
#
# What each step measures:
# * replay-*: every standard policy (`--policy all`) on a trace at two
#   device-memory sizes (10% and 25% of the trace's peak live bytes), with
#   wall time, GPU time (timestamp queries), bytes moved, and latency
#   percentiles of dispatches, uploads, readbacks and compiles. Kernels
#   touch every word (`--touch-cap 0`), workgroup size 256, no integrity
#   checks (`--no-verify`: they cost host time; the lavapipe tests check
#   integrity), except one verified LRU run per trace as a sanity check.
# * coldwarm: pipeline cold vs warm start, one policy, four runs:
#   (1) cold: empty --pipeline-cache dir, driver shader cache off
#   (`__GL_SHADER_DISK_CACHE=0`); it saves wgpu's PipelineCache blob in the
#   disk store at the end; (2) warm store: same dir again, driver cache still
#   off: the run's PipelineCache is seeded from that blob, so compiles hit
#   it (the warm start a runtime gets from `--pipeline-cache` alone);
#   (3)+(4) the driver's own disk cache on, no --pipeline-cache, in a fresh
#   directory, cold then warm: the warm start a runtime gets from the driver.
# * overhead: the replayer vs a minimal wgpu loop issuing the same dispatch
#   sequence with every access hitting, twice: full-size kernels
#   (`--touch-cap 0`) and tiny kernels (`--touch-cap 64`, where host
#   overhead dominates). Goal: under 10%.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the output directory}
mkdir -p "$OUT"
BIN=${BIN:-.gpu-bin/cachescope}
if [[ -d .gpu-bin/lib ]]; then
    export LD_LIBRARY_PATH="$PWD/.gpu-bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
RESNET=workloads/traces/resnet50-train.jsonl.gz
GPT2=workloads/traces/gpt2-decode.jsonl.gz
SIZES=${SIZES:-10%peak,25%peak}
WG=${WG:-256}
TOUCH=${TOUCH:-0}          # words touched per chunk per kernel (0: all)
LIMIT=${LIMIT:+--limit $LIMIT}  # smoke tests only: replay a prefix
STEP=${1:-all}
TIMER=()
[[ -x /usr/bin/time ]] && TIMER=(/usr/bin/time -v)

[[ -x "$BIN" ]] || { echo "no binary at $BIN (see the header of $0)" >&2; exit 2; }

run() { # name, args...
    local name=$1
    shift
    echo "== $name: $BIN $*" | tee "$OUT/$name.txt"
    "${TIMER[@]}" "$BIN" "$@" >>"$OUT/$name.txt" 2>"$OUT/$name.stderr" || {
        echo "FAILED: $name (see $OUT/$name.stderr)" | tee -a "$OUT/$name.txt"
        tail -5 "$OUT/$name.stderr" >&2
        return 1
    }
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    "$BIN" --version
    "$BIN" replay --list-adapters
} >"$OUT/machine.txt" 2>&1 || true
cat "$OUT/machine.txt"

replay_trace() { # label, trace
    local label=$1 trace=$2
    run "replay-$label" replay --trace "$trace" --policy all --device-memory "$SIZES" \
        --workgroup-size "$WG" --touch-cap "$TOUCH" --no-verify --quiet $LIMIT --out "$OUT/replay-$label.json"
    run "replay-$label-verified-lru" replay --trace "$trace" --policy lru --device-memory "${SIZES%%,*}" \
        --workgroup-size "$WG" --touch-cap 4096 --verify-resident --quiet $LIMIT --out "$OUT/replay-$label-verified-lru.json"
}

coldwarm() {
    local pc="$OUT/pipeline-store" gl="$OUT/driver-shader-cache"
    rm -rf "$pc" "$gl"
    local common=(replay --trace "$GPT2" --policy lru --device-memory 100%peak ${LIMIT:---limit 20000}
        --workgroup-size "$WG" --touch-cap "$TOUCH" --no-verify --quiet)
    __GL_SHADER_DISK_CACHE=0 run coldwarm-1-cold "${common[@]}" --pipeline-cache "$pc" --out "$OUT/coldwarm-1-cold.json"
    __GL_SHADER_DISK_CACHE=0 run coldwarm-2-warm-store "${common[@]}" --pipeline-cache "$pc" --out "$OUT/coldwarm-2-warm-store.json"
    mkdir -p "$gl"
    __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH="$gl" __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
        run coldwarm-3-driver-cold "${common[@]}" --out "$OUT/coldwarm-3-driver-cold.json"
    __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH="$gl" __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
        run coldwarm-4-driver-warm "${common[@]}" --out "$OUT/coldwarm-4-driver-warm.json"
}

tiers() {
    # Device memory 10% of peak with a host tier of 25% of peak and a disk
    # tier below it: what spills to disk and what it costs, per policy; one
    # LRU run with every disk read and readback verified.
    local dt="$OUT/disk-tier"
    rm -rf "$dt"
    run tiers-resnet replay --trace "$RESNET" --policy lru,s3fifo,arc,gpu_cost --device-memory 10%peak \
        --host-memory 25%peak --disk-tier "$dt" --workgroup-size "$WG" --touch-cap "$TOUCH" --no-verify --quiet \
        $LIMIT --out "$OUT/tiers-resnet.json"
    run tiers-resnet-verified-lru replay --trace "$RESNET" --policy lru --device-memory 10%peak \
        --host-memory 25%peak --disk-tier "$dt" --workgroup-size "$WG" --touch-cap 4096 --quiet \
        $LIMIT --out "$OUT/tiers-resnet-verified-lru.json"
    rm -rf "$dt"
}

record_workloads() {
    # The built-in programs at a scale where the MLP's weights (337 MB) are
    # larger than the device budget given to the replay, then every policy
    # replayed on the recorded MLP trace at 25% of its peak.
    run record record --workload all --scale 16 --out "$OUT/recorded"
    run replay-mlp replay --trace "$OUT/recorded/mlp.jsonl.gz" --policy all --device-memory 25%peak \
        --workgroup-size "$WG" --touch-cap "$TOUCH" --no-verify --quiet --out "$OUT/replay-mlp.json"
}

overhead() {
    run overhead-full replay --trace "$GPT2" --bench-overhead --bench-reps 7 --workgroup-size "$WG" $LIMIT \
        --touch-cap "$TOUCH" --out "$OUT/overhead-full.json"
    run overhead-tiny replay --trace "$GPT2" --bench-overhead --bench-reps 7 --workgroup-size "$WG" $LIMIT \
        --touch-cap 64 --out "$OUT/overhead-tiny.json"
}

summary() {
    python3 - "$OUT" <<'EOF' || grep -h "overhead on\|^lru\|^s3fifo" "$OUT"/*.txt
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("*.json")):
    d = json.loads(f.read_text())
    adapter = d.get("extra", {}).get("adapter", {}).get("name", "?")
    if "bench" in d.get("extra", {}):
        b = d["extra"]["bench"]
        print(f"{f.name}: overhead {b['overhead']*100:+.1f}% (replayer {b['replayer_median']:.4f} s, raw {b['raw_median']:.4f} s) on {adapter}")
        continue
    print(f"{f.name} ({adapter})")
    print(f"  {'policy':<12} {'size':>8} {'moved_GB':>9} {'wall_s':>8} {'gpu_s':>8} {'compiles':>8} {'disk_hits':>9} {'disp_p50':>9} {'disp_p99':>9} {'up_p99':>9} {'rb_p99':>9} {'comp_p50':>9} {'seed_B':>7} {'disk_w':>6} {'disk_r':>6}")
    for r in d["runs"]:
        lat = r["latency"]
        moved = (r.get("upload_bytes", 0) + r.get("readback_bytes", 0)) / 1e9
        print(f"  {r['policy']:<12} {r['size']:>8} {moved:>9.2f} {r['wall_seconds']:>8.2f} {r['gpu_seconds'] or 0:>8.3f} {r['compiles']:>8} {r['pipelines']['disk_hits']:>9}"
              f" {lat['dispatch']['p50']:>9.2e} {lat['dispatch']['p99']:>9.2e} {lat['upload']['p99']:>9.2e} {lat['readback']['p99']:>9.2e} {lat['compile']['p50']:>9.2e}"
              f" {r['pipelines'].get('driver_cache_seed_bytes', 0):>7} {r.get('disk_writes', 0):>6} {r.get('disk_reads', 0):>6}")
EOF
}

case "$STEP" in
    replay) replay_trace resnet "$RESNET"; replay_trace gpt2 "$GPT2" ;;
    replay-resnet) replay_trace resnet "$RESNET" ;;
    replay-gpt2) replay_trace gpt2 "$GPT2" ;;
    coldwarm) coldwarm ;;
    tiers) tiers ;;
    record) record_workloads ;;
    overhead) overhead ;;
    all) replay_trace resnet "$RESNET"; replay_trace gpt2 "$GPT2"; coldwarm; overhead ;;
    summary) ;;
    *) echo "unknown step $STEP (replay|replay-resnet|replay-gpt2|coldwarm|tiers|record|overhead|all|summary)" >&2; exit 2 ;;
esac
summary
