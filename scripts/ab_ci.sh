#!/usr/bin/env bash
# A/B regression check for CI: builds BASE_REV (default: origin/main or the
# merge base with it) in a git worktree, then runs one A/B session of the
# bench suite between that build and this checkout's build, and judges it
# with `compare` (paired, round by round). Exit code: compare's (0 ok,
# 1 regression, 2 not comparable).
#
#   scripts/ab_ci.sh [BASE_REV] [SUITE] [ROUNDS]
#
# Writes ab/base.json, ab/current.json and ab/report.md under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=${1:-$(git merge-base HEAD origin/main 2>/dev/null || git rev-parse HEAD~1)}
suite=${2:-workloads/bench/ci.toml}
rounds=${3:-20}
out=target/ab
mkdir -p "$out"
wt=$(mktemp -d)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$wt" "$base_rev" >/dev/null
# The base build gets its own target dir (kept, so the next run is
# incremental) so that neither build invalidates the other's artifacts.
base_target="$PWD/target/ab-base"
(cd "$wt" && CARGO_TARGET_DIR="$base_target" cargo build --release -p cachescope-harness --quiet)
cp "$base_target/release/cachescope" "$out/cachescope-base"
cargo build --release -p cachescope-harness --quiet
target/release/cachescope bench "$suite" --ab-baseline "$out/cachescope-base" --ab-out "$out/base.json" \
    --out "$out/current.json" --rounds "$rounds" --quiet
set +e
target/release/cachescope compare "$out/base.json" "$out/current.json" --format markdown >"$out/report.md"
code=$?
set -e
cat "$out/report.md"
exit $code
