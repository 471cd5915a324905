#!/usr/bin/env bash
# Short fuzz run of every cargo-fuzz target in fuzz/ (trace readers and the
# workload parser): scripts/fuzz.sh [RUNS_PER_TARGET, default 20000].
# Seeded (CACHESCOPE_FUZZ_SEED, default 1) and bounded by a run count, not a
# time: the same inputs every time, so CI is deterministic; raise the count
# or change the seed to explore further.
# Needs cargo-fuzz (installed from crates.io when missing) and runs on the
# stable toolchain through RUSTC_BOOTSTRAP (libFuzzer's flags are nightly
# flags). No sanitizer: the workspace has no unsafe code. Memory is capped
# (-rss_limit_mb, -malloc_limit_mb) so an allocation sized by a hostile
# header is a failure. New inputs go to a scratch directory, not to the
# committed seeds (fuzz/corpus/<target>/); a crash fails the script and
# leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-20000}"
seed="${CACHESCOPE_FUZZ_SEED:-1}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none
total=0
for target in $(cargo fuzz list); do
  scratch="$(mktemp -d)"
  log="$scratch/log"
  if ! cargo fuzz run --sanitizer none "$target" "$scratch" "corpus/$target" -- \
      -runs="$runs" -seed="$seed" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target FAILED (input saved under fuzz/artifacts/$target/)"
    exit 1
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  echo "fuzz $target: ${execs:-?} executions (seed $seed), no crash"
  total=$((total + ${execs:-0}))
  rm -rf "$scratch"
done
echo "fuzz: $total executions in all, no crash"
