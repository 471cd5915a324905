#!/usr/bin/env python3
"""Side-by-side benchmark: `cachescope sim` against libCacheSim 0.3.5.

One run, one machine, one trace file (libCacheSim's oracleGeneral binary),
two experiments:

1. per policy, one policy and size per process: cachescope's whole-process
   wall time (decode included) against libCacheSim's own simulation time
   (`process_trace`, reader already open, decode interleaved);
2. a sweep of every shared policy x 3 sizes: cachescope in one process
   (`--policy ... --size a,b,c`, all cores) against libCacheSim with one
   process per simulation on all cores (a multiprocessing pool).

Both simulators must report the same misses and missed bytes for every
simulation (single runs and every run of the sweep); the script checks it
and refuses to report a speed for a run that disagrees. It records the
median and every sample, and writes `raw.json` and `table.md` to `--out`.

    python3 scripts/bench_sim_vs_libcachesim.py --cachescope target/release/cachescope \
        --requests 10000000 --repeats 5 --out results/<date>-<machine>/sim-vs-libcachesim
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import libcachesim as lcs

# One policy and size per process: these. The sweep adds twoq.
SINGLE = ["lru", "fifo", "clock", "sieve", "s3fifo", "arc", "lfu"]
POLICIES = SINGLE + ["twoq"]
CTORS = {
    "lru": lambda c, hp: lcs.LRU(c, hashpower=hp),
    "fifo": lambda c, hp: lcs.FIFO(c, hashpower=hp),
    "clock": lambda c, hp: lcs.Clock(c, hashpower=hp, init_freq=0, n_bit_counter=1),
    "sieve": lambda c, hp: lcs.Sieve(c, hashpower=hp),
    "s3fifo": lambda c, hp: lcs.S3FIFO(c, hashpower=hp, small_size_ratio=0.1, ghost_size_ratio=0.9, move_to_main_threshold=2),
    "arc": lambda c, hp: lcs.ARC(c, hashpower=hp),
    "lfu": lambda c, hp: lcs.LFU(c, hashpower=hp),
    "twoq": lambda c, hp: lcs.TwoQ(c, hashpower=hp, a_in_size_ratio=0.25, a_out_size_ratio=0.5),
}


def make_trace(path, requests, keys, alpha, seed):
    """Zipf keys, per-key sizes, next-access filled (oracleGeneral)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, keys + 1, dtype=np.float64)
    p = ranks ** -alpha
    p /= p.sum()
    draws = rng.choice(keys, size=requests, p=p)
    # Scatter ranks over the id space (kept below 2^63); sizes are per key.
    ids = (draws.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(1)
    key_sizes = np.exp(rng.uniform(np.log(64), np.log(65536), size=keys)).astype(np.uint32)
    sizes = key_sizes[draws]
    order = np.argsort(ids, kind="stable")
    nxt = np.full(requests, -1, dtype=np.int64)
    sorted_ids = ids[order]
    same = sorted_ids[1:] == sorted_ids[:-1]
    nxt[order[:-1][same]] = order[1:][same]
    rec = np.zeros(requests, dtype=[("t", "<u4"), ("id", "<u8"), ("sz", "<u4"), ("next", "<i8")])
    rec["t"] = np.arange(requests, dtype=np.uint32)
    rec["id"] = ids
    rec["sz"] = sizes
    rec["next"] = nxt
    rec.tofile(path)
    uniq = np.unique(draws)
    return int(key_sizes[uniq].astype(np.uint64).sum()), len(uniq)


def lcs_run(args):
    """One libCacheSim simulation; times process_trace only."""
    trace, policy, capacity, hashpower = args
    reader = lcs.TraceReader(trace, lcs.TraceType.ORACLE_GENERAL_TRACE)
    cache = CTORS[policy](capacity, hashpower)
    t0 = time.perf_counter()
    miss_ratio, byte_miss_ratio = cache.process_trace(reader)
    return time.perf_counter() - t0, miss_ratio, byte_miss_ratio


def check_same(policy, capacity, run, miss_ratio, byte_miss_ratio, requests, requested_bytes):
    """Exits unless cachescope's run has libCacheSim's misses and missed bytes."""
    lcs_misses = round(miss_ratio * requests)
    lcs_missed_bytes = round(byte_miss_ratio * requested_bytes)
    if (run["misses"], run["missed_bytes"]) != (lcs_misses, lcs_missed_bytes):
        sys.exit(f"{policy} @ {capacity}: cachescope {run['misses']} misses / {run['missed_bytes']} bytes, "
                 f"libCacheSim {lcs_misses} / {lcs_missed_bytes}: not comparing speed")


def paired_speedup(cs_times, lcs_times):
    """libCacheSim / cachescope per alternating pair: median, min and max
    (on a noisy host the pairs see the same moment; medians of each side
    may not)."""
    paired = [l / c for c, l in zip(cs_times, lcs_times)]
    return {"paired_speedup_median": statistics.median(paired), "paired_speedup_min": min(paired),
            "paired_speedup_max": max(paired)}


def cpu_model():
    """lscpu's model name, plus family/model and L2/L3 sizes: VMs often
    report a bare "AMD EPYC", and the cache sizes are what these
    memory-bound runs depend on."""
    name, extra = platform.processor(), {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key == "Model name":
                name = value.strip()
            elif key in ("CPU family", "Model", "L2 cache", "L3 cache"):
                extra[key.lower()] = value.strip()
    except OSError:
        pass
    return name + "".join(f"; {k} {v}" for k, v in extra.items())


def cs_run(binary, trace, policies, sizes, out):
    cmd = [binary, "sim", "--trace", trace, "--format", "oracle", "--policy", ",".join(policies),
           "--size", ",".join(str(s) for s in sizes), "--out", out, "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(out) as f:
        runs = json.load(f)["runs"]
    return wall, runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cachescope", required=True)
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep-repeats", type=int, default=None, help="default: repeats // 2, at least 1")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    policies = args.policies.split(",")
    if args.sweep_repeats is None:
        args.sweep_repeats = max(1, args.repeats // 2)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cs-bench-")
    trace = os.path.join(work, "zipf.oracleGeneral.bin")
    unique_bytes, unique_keys = make_trace(trace, args.requests, args.keys, args.alpha, 42)
    hashpower = max(16, int(np.ceil(np.log2(unique_keys))) + 1)
    fracs = [0.001, 0.01, 0.1]
    caps = [int(f * unique_bytes) for f in fracs]
    print(f"trace: {args.requests} requests, {unique_keys} keys, {unique_bytes} unique bytes; capacities {caps}",
          file=sys.stderr)
    rows = []
    load_before = os.getloadavg()
    requested_bytes = None

    # 1. One policy and size (1%) per process; the two alternate, so that
    # both see the same background load.
    cap = caps[1]
    for policy in [p for p in policies if p in SINGLE]:
        cs_times, lcs_times = [], []
        for r in range(args.repeats):
            wall, runs = cs_run(args.cachescope, trace, [policy], [cap], os.path.join(work, "o.json"))
            cs_times.append(wall)
            t, mr, bmr = lcs_run((trace, policy, cap, hashpower))
            lcs_times.append(t)
            requested_bytes = runs[0]["requested_bytes"]
            check_same(policy, cap, runs[0], mr, bmr, args.requests, requested_bytes)
        cs_med, lcs_med = statistics.median(cs_times), statistics.median(lcs_times)
        row = {"experiment": "single", "policy": policy, "capacity": cap, "requests": args.requests,
               **paired_speedup(cs_times, lcs_times),
               "misses": runs[0]["misses"], "missed_bytes": runs[0]["missed_bytes"],
               "cachescope_wall_s": cs_med, "libcachesim_sim_s": lcs_med,
               "cachescope_mreq_s": args.requests / cs_med / 1e6, "libcachesim_mreq_s": args.requests / lcs_med / 1e6,
               "speedup": lcs_med / cs_med, "cachescope_samples_s": cs_times, "libcachesim_samples_s": lcs_times}
        rows.append(row)
        print(f"{policy:8} cachescope {row['cachescope_mreq_s']:6.1f} Mreq/s (whole process)  "
              f"libCacheSim {row['libcachesim_mreq_s']:6.1f} Mreq/s (simulation only)  x{row['speedup']:.2f}",
              file=sys.stderr)

    # 2. Sweep: every policy x 3 sizes. cachescope: one process, all cores;
    # libCacheSim: one process per simulation, as many at once as cores,
    # handed out one at a time (chunksize 1) so no core idles early.
    cores = os.cpu_count() or 1
    cs_times, lcs_times = [], []
    jobs = [(trace, p, c, hashpower) for p in policies for c in caps]
    for r in range(args.sweep_repeats):
        wall, cs_runs = cs_run(args.cachescope, trace, policies, caps, os.path.join(work, "o.json"))
        cs_times.append(wall)
        t0 = time.perf_counter()
        with mp.Pool(cores) as pool:
            lcs_results = pool.map(lcs_run, jobs, chunksize=1)
        lcs_times.append(time.perf_counter() - t0)
        by_run = {(x["policy"], x["capacity"]): x for x in cs_runs}
        for (_, p, c, _), (_, mr, bmr) in zip(jobs, lcs_results):
            run = by_run[(p, c)]
            check_same(p, c, run, mr, bmr, args.requests, run["requested_bytes"])
    cs_med, lcs_med = statistics.median(cs_times), statistics.median(lcs_times)
    rows.append({"experiment": "sweep", "policy": ",".join(policies), "capacity": caps, "requests": args.requests,
                 **paired_speedup(cs_times, lcs_times),
                 "simulations": len(jobs), "libcachesim_processes": cores, "cachescope_wall_s": cs_med,
                 "libcachesim_wall_s": lcs_med, "speedup": lcs_med / cs_med, "cachescope_samples_s": cs_times,
                 "libcachesim_samples_s": lcs_times})
    print(f"sweep {len(jobs)} sims: cachescope {cs_med:.2f} s, libCacheSim {lcs_med:.2f} s ({cores} processes) "
          f"x{lcs_med / cs_med:.2f}", file=sys.stderr)

    version = subprocess.run([args.cachescope, "--version"], capture_output=True, text=True).stdout.strip()
    with open(os.path.join(work, "o.json")) as f:
        tool = json.load(f).get("tool", {})
    meta = {"machine": platform.node(), "cpus": cores, "cpu_model": cpu_model(), "python": platform.python_version(),
            "libcachesim": lcs.__version__, "cachescope": version, "cachescope_git_rev": tool.get("git_rev"),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "repeats": args.repeats,
            "sweep_repeats": args.sweep_repeats,
            "trace": {"requests": args.requests, "keys": args.keys, "alpha": args.alpha, "seed": 42,
                      "unique_keys": unique_keys, "unique_bytes": unique_bytes, "requested_bytes": requested_bytes}}
    with open(os.path.join(args.out, "raw.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("| policy | cachescope Mreq/s (whole process) | libCacheSim Mreq/s (simulation only) | ratio of medians "
                "| paired ratio: median [min, max] |\n")
        f.write("|---|---:|---:|---:|---:|\n")
        for row in rows:
            if row["experiment"] == "single":
                f.write(f"| {row['policy']} | {row['cachescope_mreq_s']:.1f} | {row['libcachesim_mreq_s']:.1f} "
                        f"| {row['speedup']:.2f}x | {row['paired_speedup_median']:.2f}x "
                        f"[{row['paired_speedup_min']:.2f}, {row['paired_speedup_max']:.2f}] |\n")
        for row in rows:
            if row["experiment"] == "sweep":
                f.write(f"\nSweep ({row['simulations']} simulations: {row['policy']} x {row['capacity']} bytes): "
                        f"cachescope {row['cachescope_wall_s']:.2f} s (one process), libCacheSim "
                        f"{row['libcachesim_wall_s']:.2f} s ({row['libcachesim_processes']} processes at a time): "
                        f"{row['speedup']:.2f}x (medians); paired ratio {row['paired_speedup_median']:.2f}x "
                        f"[{row['paired_speedup_min']:.2f}, {row['paired_speedup_max']:.2f}]\n")
    os.remove(trace)


if __name__ == "__main__":
    main()
