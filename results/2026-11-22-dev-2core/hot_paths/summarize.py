#!/usr/bin/env python3
"""Collects criterion's estimates into raw.csv and prints the medians table.

Usage: summarize.py LABEL=DIR[,DIR...] [LABEL=DIR[,DIR...] ...] > summary.md

Each LABEL is one run (e.g. run1=target/criterion,target/peers/criterion);
reads <DIR>/**/new/{benchmark.json,estimates.json}. Writes raw.csv next to
this script (one row per run and benchmark, nanoseconds per operation) and
prints a Markdown table: the median per run, and the ratio of each median to
the peer's median of the same run.
"""
import csv, json, sys
from pathlib import Path

# Peer each group is compared with (ratio = implementation / peer).
PEER = {"cache/hit": "quick_cache-unsync", "cache/miss": "quick_cache-unsync",
        "tiered/access": "vyre-wgpu-0.1.0", "pipeline/hit": "vyre-runtime-0.7.2",
        "pipeline/miss": "vyre-runtime-0.7.2", "hints/record_present": "vyre-foundation-0.7.2",
        "hints/record_evict": "vyre-foundation-0.7.2"}

rows, runs = [], []
for arg in sys.argv[1:]:
    label, dirs = arg.split("=", 1)
    runs.append(label)
    for root in dirs.split(","):
        for bench in Path(root).rglob("new/benchmark.json"):
            meta = json.loads(bench.read_text())
            est = json.loads((bench.parent / "estimates.json").read_text())
            group_impl, entries = meta["full_id"].rsplit("/", 1)  # cache/hit/cachescope-lru/10000
            parts = group_impl.split("/")
            med = est["median"]
            rows.append({
                "run": label, "group": "/".join(parts[:2]), "implementation": "/".join(parts[2:]),
                "entries": int(entries), "median_ns": med["point_estimate"],
                "median_lo_ns": med["confidence_interval"]["lower_bound"],
                "median_hi_ns": med["confidence_interval"]["upper_bound"],
                "mean_ns": est["mean"]["point_estimate"], "std_dev_ns": est["std_dev"]["point_estimate"],
            })
rows.sort(key=lambda r: (r["group"], r["entries"], r["implementation"], r["run"]))
with Path(__file__).with_name("raw.csv").open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})

def fmt(ns):
    if ns >= 1e6: return f"{ns/1e6:.2f} ms"
    if ns >= 1e3: return f"{ns/1e3:.2f} µs"
    return f"{ns:.1f} ns"

def ratio(x, peer):
    r = x / peer
    return f"{r:.2f}x" if r >= 0.01 else f"1/{peer/x:,.0f}"

by = {(r["run"], r["group"], r["entries"], r["implementation"]): r for r in rows}
keys = sorted({(r["group"], r["entries"], r["implementation"]) for r in rows},
              key=lambda k: (list(PEER).index(k[0]) if k[0] in PEER else 99, k[1], k[2] != PEER.get(k[0]), k[2]))
print("| benchmark | implementation | entries | " + " | ".join(f"median / op ({l})" for l in runs)
      + " | " + " | ".join(f"vs peer ({l})" for l in runs) + " |")
print("|---|---|---:|" + "---:|" * (2 * len(runs)))
for g, n, impl_ in keys:
    meds, rats = [], []
    for l in runs:
        r, p = by.get((l, g, n, impl_)), by.get((l, g, n, PEER.get(g)))
        meds.append(fmt(r["median_ns"]) if r else "–")
        rats.append("peer" if impl_ == PEER.get(g) else (ratio(r["median_ns"], p["median_ns"]) if r and p else "–"))
    print(f"| {g} | {impl_} | {n:,} | " + " | ".join(meds) + " | " + " | ".join(rats) + " |")
