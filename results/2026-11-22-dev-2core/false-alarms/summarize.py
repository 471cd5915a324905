#!/usr/bin/env python3
"""Compares the files run.sh made and prints the false-alarm and detection
tables (markdown) on stdout; writes pairs.csv next to this script.

    python3 summarize.py OUT_DIR CACHESCOPE_BINARY > summary.md

A comparison *flags* at threshold t when the lower end of the 99% bootstrap
interval of some run's time ratio, or of the suite's geometric mean, is above
1 + t: exactly what `cachescope compare --threshold t` fails on. One
`compare --format json` per pair and time basis gives the intervals, from
which every threshold's verdict follows.
"""
import concurrent.futures as cf
import glob
import json
import os
import subprocess
import sys

out_dir, binary = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
same = sorted(glob.glob(os.path.join(out_dir, "same-*.json")))
slow = {pct: sorted(glob.glob(os.path.join(out_dir, f"slow{pct}-*.json"))) for pct in ["05", "10", "20", "30"]}
BASES = ["cpu", "wall", "normalized"]
THRESHOLDS = [0.05, 0.10, 0.15, 0.20]

pairs = [("same", 0, a, b) for i, a in enumerate(same) for b in same[i + 1:]]
for pct, files in slow.items():
    pairs += [(f"slow{pct}", int(pct), a, b) for a in same for b in files]


def run(job):
    kind, pct, a, b, basis = job
    p = subprocess.run([binary, "compare", a, b, "--format", "json", "--time", basis], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise SystemExit(f"compare {a} {b} --time {basis}: exit {p.returncode}: {p.stderr}")
    r = json.loads(p.stdout)
    behaviour = sum(1 for x in r["runs"] if x["behaviour"] != "unchanged")
    lowers = [x["timing"]["lower"] for x in r["runs"] if x["timing"]["lower"] is not None]
    suite = r["suite_timing"]
    return dict(kind=kind, pct=pct, a=os.path.basename(a), b=os.path.basename(b), basis=basis,
                behaviour_changes=behaviour, max_run_lower=max(lowers), suite_ratio=suite["ratio"],
                suite_lower=suite["lower"], suite_upper=suite["upper"],
                runs_over={t: sum(1 for l in lowers if l > 1 + t) for t in THRESHOLDS})


jobs = [(k, p, a, b, basis) for (k, p, a, b) in pairs for basis in BASES]
with cf.ThreadPoolExecutor(max_workers=2) as ex:
    results = list(ex.map(run, jobs))

with open(os.path.join(here, "pairs.csv"), "w") as f:
    f.write("kind,slowdown_pct,baseline,current,basis,behaviour_changes,max_run_lower,suite_ratio,suite_lower,suite_upper,"
            + ",".join(f"runs_flagged_at_{int(t*100)}pct" for t in THRESHOLDS) + "\n")
    for r in results:
        f.write(f"{r['kind']},{r['pct']},{r['a']},{r['b']},{r['basis']},{r['behaviour_changes']},{r['max_run_lower']:.4f},"
                f"{r['suite_ratio']:.4f},{r['suite_lower']:.4f},{r['suite_upper']:.4f},"
                + ",".join(str(r["runs_over"][t]) for t in THRESHOLDS) + "\n")


def sel(kind, basis):
    return [r for r in results if r["kind"] == kind and r["basis"] == basis]


def flagged(r, t, rule):
    run = r["max_run_lower"] > 1 + t
    suite = r["suite_lower"] > 1 + t
    return {"any": run or suite, "suite": suite, "runs": run}[rule]


n_runs = len(json.load(open(same[0]))["runs"])
print(f"{len(same)} sessions of the same binary, {len(pairs) - sum(len(v) * len(same) for v in slow.values())} pairs; "
      f"{n_runs} runs per session; slowed sessions: "
      + ", ".join(f"{int(p)}%: {len(v)}" for p, v in slow.items()) + f" (each compared with all {len(same)} unslowed ones).\n")
print("Deterministic figures: " + ("identical in every comparison." if all(r["behaviour_changes"] == 0 for r in results)
                                   else "CHANGED in some comparisons (see pairs.csv)!") + "\n")
for rule, label in [("any", "what `compare` fails on: any run or the suite"), ("suite", "suite geometric mean only"),
                    ("runs", "any single run only")]:
    print(f"### Flagged comparisons, rule: {label}\n")
    print("| basis | threshold | same commit: false alarms | 5% slower | 10% slower | 20% slower | 30% slower |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for basis in BASES:
        for t in THRESHOLDS:
            cells = []
            for kind in ["same"] + [f"slow{p}" for p in slow]:
                rs = sel(kind, basis)
                k = sum(flagged(r, t, rule) for r in rs)
                cells.append(f"{k}/{len(rs)}")
            print(f"| {basis} | {int(t*100)}% | " + " | ".join(cells) + " |")
    print()
print("### Suite geometric-mean ratio (current / baseline): median and range over the comparisons\n")
print("| basis | same commit | 5% slower | 10% slower | 20% slower | 30% slower |")
print("|---|---|---|---|---|---|")
for basis in BASES:
    cells = []
    for kind in ["same"] + [f"slow{p}" for p in slow]:
        v = sorted(r["suite_ratio"] for r in sel(kind, basis))
        cells.append(f"{v[len(v)//2]:.3f} ({v[0]:.3f}–{v[-1]:.3f})")
    print(f"| {basis} | " + " | ".join(cells) + " |")
print()
print("### Single runs flagged per comparison of the same commit (of "
      f"{n_runs}), 5% threshold: mean and worst\n")
print("| basis | mean | worst |")
print("|---|---:|---:|")
for basis in BASES:
    v = [r["runs_over"][0.05] for r in sel("same", basis)]
    print(f"| {basis} | {sum(v)/len(v):.1f} | {max(v)} |")
