#!/usr/bin/env bash
# The test command of cachescope: installs what the tests need on a fresh
# Debian machine that has Rust, then runs every test. CI runs exactly this
# (.ci/run). Safe to run again: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "system packages"
# python3 + pip run the libCacheSim oracle; prometheus (with promtool) and
# chromium are the real Prometheus server and browser of the dashboard tests.
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v chromium >/dev/null || need_apt+=(chromium)
# wrk: the dashboard load test; util-linux (prlimit, unshare): the disk
# store's full-disk tests.
command -v wrk >/dev/null || need_apt+=(wrk)
command -v prlimit >/dev/null || need_apt+=(util-linux)
# lavapipe (Mesa's software Vulkan) is the real device of the GPU tests.
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || need_apt+=(mesa-vulkan-drivers)
ldconfig -p | grep -q libvulkan.so.1 || need_apt+=(libvulkan1)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Mesa warns without a runtime dir; harmless, but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

step "libCacheSim 0.3.5 (the test oracle)"
if ! python3 -c 'import libcachesim, sys; sys.exit(libcachesim.__version__ != "0.3.5")' 2>/dev/null; then
  python3 -m pip install --quiet libcachesim==0.3.5 \
    || python3 -m pip install --quiet --break-system-packages libcachesim==0.3.5
fi

step "lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (debug: debug assertions on)"
cargo test --workspace --all-targets --locked

step "core tests in release with strict assertions (invariants checked at full speed)"
cargo test -p cachescope-core --release --features strict-assertions --locked --lib --tests

step "doc tests"
cargo test --workspace --doc --locked

step "benchmark regression check: the CI suite against results/baselines/ci.json"
# Deterministic figures (hits, misses, bytes, uploads, readbacks) must equal the
# baseline's exactly: a change fails here (exit 1), as do files that cannot be
# compared (exit 2). Timings are reported, never fail (--timings report): this
# machine is not the one the baseline was measured on, so its times say
# nothing about the code. If a policy's behaviour changes on purpose,
# regenerate the baseline in the same change:
#   cargo run --release -- bench workloads/bench/ci.toml --out results/baselines/ci.json
cargo build --release --locked -p cachescope-harness
mkdir -p target/bench
./target/release/cachescope bench workloads/bench/ci.toml --out target/bench/ci.json --quiet
./target/release/cachescope compare results/baselines/ci.json target/bench/ci.json \
  --timings report --format markdown --bmf target/bench/ci-bmf.json | tee target/bench/ci-compare.md

step "fuzz: every trace reader and the workload parser, 20000 seeded runs each (cargo-fuzz)"
# Builds fuzz/ (its own crate) with libFuzzer; new inputs go to a scratch
# directory, crashes fail the step. Seeded and run-bounded, so deterministic.
# CACHESCOPE_FUZZ_RUNS=0 skips it; the committed corpus is replayed by
# harness/tests/fuzz_corpus.rs in any case.
if [ "${CACHESCOPE_FUZZ_RUNS:-20000}" != 0 ]; then
  scripts/fuzz.sh "${CACHESCOPE_FUZZ_RUNS:-20000}"
fi
