#!/usr/bin/env python3
"""Runs a CSV request trace through libCacheSim 0.3.5 and prints exact counts.

The test oracle of cachescope's policies (see ../shared/semantics.md, section
6). Usage:

    libcachesim_oracle.py TRACE.csv --policies lru,fifo,clock --sizes 100,1000 [--objects]

Prints one JSON object per line: policy, capacity, requests, misses,
requested_bytes, missed_bytes. libCacheSim only returns ratios; exact counts
are recovered by rounding ratio x totals, which is exact for these sizes
(the totals are computed here from the same trace).

Pitfalls handled here (semantics.md section 6): Belady reads a copy of the
trace converted to oracleGeneral (next-access times), made from the trace
without its size-0 lines so next accesses point at counted requests;
S3-FIFO with a capacity under 10 aborts the process, so it is refused here
with an error; some policies (WTinyLFU) print from C to stdout, so C's stdout
is sent to stderr and only the JSON lines reach stdout. TraceReader.close()
is never called (double free).
"""

import argparse
import atexit
import csv
import json
import math
import os
import shutil
import sys
import tempfile

try:
    import libcachesim as lcs
except ImportError:
    sys.exit("libcachesim is not installed: python3 -m pip install libcachesim==0.3.5")

CONSTRUCTORS = {
    "lru": lambda size, hp: lcs.LRU(size, hashpower=hp),
    "fifo": lambda size, hp: lcs.FIFO(size, hashpower=hp),
    "clock": lambda size, hp: lcs.Clock(size, hashpower=hp, init_freq=0, n_bit_counter=1),
    "sieve": lambda size, hp: lcs.Sieve(size, hashpower=hp),
    "lfu": lambda size, hp: lcs.LFU(size, hashpower=hp),
    "arc": lambda size, hp: lcs.ARC(size, hashpower=hp),
    "twoq": lambda size, hp: lcs.TwoQ(size, hashpower=hp, a_in_size_ratio=0.25, a_out_size_ratio=0.5),
    "s3fifo": lambda size, hp: lcs.S3FIFO(
        size, hashpower=hp, small_size_ratio=0.1, ghost_size_ratio=0.9, move_to_main_threshold=2
    ),
    "belady": lambda size, hp: lcs.Belady(size, hashpower=hp),
    "wtinylfu": lambda size, hp: lcs.WTinyLFU(size, hashpower=hp, main_cache="SLRU", window_size=0.01),
    "lirs": lambda size, hp: lcs.LIRS(size, hashpower=hp),
    "gdsf": lambda size, hp: lcs.GDSF(size, hashpower=hp),
}

# Policies that need next-access times (an oracleGeneral trace).
CLAIRVOYANT = {"belady"}


def csv_reader(path, objects):
    params = lcs.ReaderInitParam(has_header=True, has_header_set=True, delimiter=",", ignore_obj_size=objects)
    # Left at their default 0, the field numbers silently read garbage.
    params.time_field, params.obj_id_field, params.obj_size_field = 1, 2, 3
    return lcs.TraceReader(path, lcs.TraceType.CSV_TRACE, params)


def oracle_general(trace, workdir):
    """The trace without size-0 lines, converted to oracleGeneral."""
    clean = os.path.join(workdir, "clean.csv")
    with open(trace, newline="") as src, open(clean, "w", newline="") as dst:
        rows = csv.reader(src)
        out = csv.writer(dst)
        out.writerow(next(rows))
        for row in rows:
            if int(row[2]) != 0:
                out.writerow(row)
    converted = os.path.join(workdir, "trace.oracleGeneral")
    # The binding takes the C reader, not the Python wrapper.
    lcs.Util.convert_to_oracleGeneral(csv_reader(clean, False)._reader, converted)
    return converted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--policies", required=True)
    ap.add_argument("--sizes", required=True)
    ap.add_argument("--objects", action="store_true", help="object cache: every object has size 1")
    args = ap.parse_args()

    requests = requested_bytes = 0
    keys = set()
    with open(args.trace, newline="") as f:
        for row in csv.DictReader(f):
            size = int(row["size"])
            if size == 0:
                continue  # libCacheSim skips size-0 requests entirely
            requests += 1
            requested_bytes += 1 if args.objects else size
            keys.add(row["key"])
    hashpower = max(4, math.ceil(math.log2(len(keys) + 1)) + 1)

    policies = args.policies.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    for policy in policies:
        if policy not in CONSTRUCTORS:
            sys.exit(f"unknown policy {policy!r} (known: {', '.join(CONSTRUCTORS)})")
        if policy == "s3fifo" and min(sizes) < 10:
            sys.exit("libCacheSim's S3FIFO aborts the process for a capacity under 10")

    # C code (WTinyLFU) prints to stdout: send fd 1 to stderr and keep the
    # real stdout for the JSON lines.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    # Readers are never closed (double free, see above), so the converted
    # file may still be mapped: remove the directory at exit, not earlier.
    workdir = tempfile.mkdtemp(prefix="lcs-oracle-")
    atexit.register(shutil.rmtree, workdir, True)
    converted = None
    for policy in policies:
        for size in sizes:
            if policy in CLAIRVOYANT:
                if converted is None:
                    converted = oracle_general(args.trace, workdir)
                reader = lcs.TraceReader(
                    converted, lcs.TraceType.ORACLE_GENERAL_TRACE, lcs.ReaderInitParam(ignore_obj_size=args.objects)
                )
            else:
                reader = csv_reader(args.trace, args.objects)
            cache = CONSTRUCTORS[policy](size, hashpower)
            miss_ratio, byte_miss_ratio = cache.process_trace(reader)
            print(json.dumps({
                "policy": policy,
                "capacity": size,
                "requests": requests,
                "misses": round(miss_ratio * requests),
                "requested_bytes": requested_bytes,
                "missed_bytes": round(byte_miss_ratio * requested_bytes),
            }), file=json_out, flush=True)


if __name__ == "__main__":
    main()
