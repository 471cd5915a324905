#!/usr/bin/env python3
"""From pairs.csv: comparisons flagged by `compare`'s default rule (suite
geometric mean beyond 5% or a single run beyond 10%, 99% intervals), per
time basis. Prints a markdown table."""
import csv, os
rows = list(csv.DictReader(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs.csv"))))
kinds = ["same", "slow05", "slow10", "slow20", "slow30"]
print("| basis | same commit: false alarms | 5% slower | 10% slower | 20% slower | 30% slower |")
print("|---|---:|---:|---:|---:|---:|")
for basis in ["normalized", "cpu", "wall"]:
    cells = []
    for k in kinds:
        rs = [r for r in rows if r["kind"] == k and r["basis"] == basis]
        n = sum(float(r["suite_lower"]) > 1.05 or float(r["max_run_lower"]) > 1.10 for r in rs)
        cells.append(f"{n}/{len(rs)}")
    print(f"| {basis}{' (default)' if basis == 'normalized' else ''} | " + " | ".join(cells) + " |")
