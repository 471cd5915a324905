#!/usr/bin/env bash
# Instruction counts of every policy's hot path under valgrind's callgrind
# (core/benches/instructions.rs, gungraun). Counts, unlike times, do not move
# when other processes load the machine, so they are comparable across runs
# and commits on a noisy shared machine.
#
#   bash scripts/instructions.sh [OUT_DIR]
#
# Installs gungraun-runner at the version Cargo.lock pins for gungraun
# (into target/gungraun-runner, not ~/.cargo), runs the bench and writes
# OUT_DIR/raw.csv (policy, instructions, L1 hits, LL hits, RAM hits,
# estimated cycles) and prints the table. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/instructions}
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "error: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
version=$(awk '/^name = "gungraun"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "error: gungraun is not in Cargo.lock" >&2; exit 1; }
runner_root=target/gungraun-runner/$version
if [ ! -x "$runner_root/bin/gungraun-runner" ]; then
  cargo install --quiet --locked --root "$runner_root" gungraun-runner --version "$version"
fi
export GUNGRAUN_RUNNER="$PWD/$runner_root/bin/gungraun-runner"
log="$out/bench.log"
cargo bench --locked -p cachescope-core --features instruction-benches --bench instructions 2>&1 | tee "$log"
python3 - "$log" "$out/raw.csv" <<'PY'
import re, sys
log, csv = sys.argv[1], sys.argv[2]
rows, cur = [], None
fields = {"Instructions": "instructions", "L1 Hits": "l1_hits", "LL Hits": "ll_hits",
          "RAM Hits": "ram_hits", "Estimated Cycles": "estimated_cycles"}
for line in open(log, encoding="utf-8", errors="replace"):
    m = re.search(r'replay \S+:\(setup\("([a-z_0-9]+)"\)\)', line)
    if m:
        cur = {"policy": m.group(1)}
        rows.append(cur)
        continue
    m = re.match(r"\s+([A-Za-z0-9 ]+):\s+(\d+)\|", line)
    if m and cur is not None and m.group(1).strip() in fields:
        cur[fields[m.group(1).strip()]] = int(m.group(2))
cols = ["policy"] + list(fields.values())
with open(csv, "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join(str(r.get(c, "")) for c in cols) + "\n")
print(f"\n| policy | instructions | per request | estimated cycles |\n|---|---:|---:|---:|")
for r in rows:
    print(f"| {r['policy']} | {r['instructions']:,} | {r['instructions'] / 20000:.0f} | {r['estimated_cycles']:,} |")
PY
