#!/usr/bin/env python3
"""Judges every A/B session of run.sh with `compare` (default rule) and
prints the table of README.md. Usage: summarize.py OUT_DIR"""
import json, pathlib, subprocess, sys

out = pathlib.Path(sys.argv[1])
binary = out / "cachescope"
rows = []
for cur in sorted(out.glob("*-cur.json")):
    name = cur.name[: -len("-cur.json")]
    base = out / f"{name}-base.json"
    p = subprocess.run([str(binary), "compare", str(base), str(cur), "--format", "json"], capture_output=True, text=True)
    report = json.loads(p.stdout)
    s = report["suite_timing"]
    slower_runs = sum(1 for r in report["runs"] if r["timing"]["verdict"] == "slower")
    rows.append((name.rsplit("-", 1)[0], name, p.returncode, s["ratio"], s["lower"], s["upper"], slower_runs))
print("| session | exit | suite ratio | 99% interval | runs flagged |")
print("|---|---:|---:|---|---:|")
for kind, name, code, ratio, lo, hi, runs in rows:
    print(f"| {name} | {code} | {ratio:.3f} | [{lo:.3f}, {hi:.3f}] | {runs} |")
print()
print("| change | sessions | flagged (exit 1) | suite ratio range |")
print("|---|---:|---:|---|")
for kind, label in [("same", "none"), ("slow05", "5% slower"), ("slow10", "10% slower"), ("slow20", "20% slower")]:
    rs = [r for r in rows if r[0] == kind]
    if rs:
        flagged = sum(1 for r in rs if r[2] == 1)
        print(f"| {label} | {len(rs)} | {flagged}/{len(rs)} | {min(r[3] for r in rs):.3f}-{max(r[3] for r in rs):.3f} |")
