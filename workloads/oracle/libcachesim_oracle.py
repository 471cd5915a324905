#!/usr/bin/env python3
"""Runs a CSV request trace through libCacheSim 0.3.5 and prints exact counts.

The test oracle of cachescope's policies (see ../shared/semantics.md, section
6). Usage:

    libcachesim_oracle.py TRACE.csv --policies lru,fifo,clock --sizes 100,1000 [--objects]

Prints one JSON object per line: policy, capacity, requests, misses,
requested_bytes, missed_bytes. libCacheSim only returns ratios; exact counts
are recovered by rounding ratio x totals, which is exact for these sizes
(the totals are computed here from the same trace).
"""

import argparse
import csv
import json
import math
import sys

try:
    import libcachesim as lcs
except ImportError:
    sys.exit("libcachesim is not installed: python3 -m pip install libcachesim==0.3.5")

CONSTRUCTORS = {
    "lru": lambda size, hp: lcs.LRU(size, hashpower=hp),
    "fifo": lambda size, hp: lcs.FIFO(size, hashpower=hp),
    "clock": lambda size, hp: lcs.Clock(size, hashpower=hp, init_freq=0, n_bit_counter=1),
}


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

    for policy in args.policies.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            params = lcs.ReaderInitParam(
                has_header=True, has_header_set=True, delimiter=",", ignore_obj_size=args.objects
            )
            # Left at their default 0, the field numbers silently read garbage.
            params.time_field, params.obj_id_field, params.obj_size_field = 1, 2, 3
            reader = lcs.TraceReader(args.trace, lcs.TraceType.CSV_TRACE, params)
            cache = CONSTRUCTORS[policy](size, hashpower)
            miss_ratio, byte_miss_ratio = cache.process_trace(reader)
            print(json.dumps({
                "policy": policy,
                "capacity": size,
                "requests": requests,
                "misses": round(miss_ratio * requests),
                "requested_bytes": requested_bytes,
                "missed_bytes": round(byte_miss_ratio * requested_bytes),
            }), flush=True)


if __name__ == "__main__":
    main()
