#!/usr/bin/env python3
"""Where a loaded `clew serve` spends its CPU, from `perf record`, in coarse buckets of self time.

    perf record -F 499 -g -p SERVER_PID -o perf.data -- sleep 8     # while wrk runs
    python3 scripts/load/perf_buckets.py perf.data [--top 15]

Each sample goes to the bucket of its leaf frame (self time: the release binary has no frame pointers, so call
chains through Rust code are mostly cut; kernel chains are complete, which is how kernel samples are split into
network and scheduling). The shares add up to 100 %.
"""
import argparse
import re
import subprocess
from collections import Counter

USER = [
    ("engine: top-down check", r"clew::engine::check|GroupClosure|clew::engine::Env|admit_stored"),
    ("engine: bitmaps (reach, roaring)", r"clew::engine::reach|roaring::"),
    ("index + interner reads (imbl HAMT/vector)", r"imbl::|clew::index::"),
    ("service: batch/filter/lookup glue", r"clew::service::"),
    ("JSON (serde_json)", r"serde_json::|serde::|serde_core::|ryu::|itoa::"),
    ("ids (User/ObjectRef parse, to_string)", r"clew::tuple::|core::fmt::|alloc::fmt"),
    ("request id (UUID), tracing, metrics", r"uuid::|getrandom|tracing|prometheus|clew::server::metrics|sharded_slab"),
    ("HTTP (hyper, axum, tower, http)", r"hyper::|axum::|tower|^http::|httparse|h1::|bytes::"),
    ("tokio runtime", r"tokio::|mio::|parking_lot|crossbeam"),
    ("allocator + memcpy/memcmp", r"malloc|free|_int_|realloc|calloc|memmove|memcpy|memcmp|memset|alloc::raw_vec"),
]
NET = r"tcp_|ip_|skb|sock|inet|net_|netif|__dev|loopback|napi|sendmsg|recvmsg|ep_poll|epoll|do_writev|vfs_read|vfs_write|ksys_read"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="?", default="perf.data")
    p.add_argument("--top", type=int, default=0, help="also list the N hottest leaf symbols")
    a = p.parse_args()
    out = subprocess.run(["perf", "script", "-i", a.data, "-F", "ip,sym,dso"], capture_output=True, text=True,
                         errors="replace").stdout
    counts, leaves, total = Counter(), Counter(), 0
    for block in out.split("\n\n"):
        frames = [l.strip() for l in block.strip().splitlines() if l.strip()]
        if not frames:
            continue
        total += 1
        leaf = frames[0].split(None, 1)[1] if " " in frames[0] else frames[0]
        leaves[leaf] += 1
        if "[kernel.kallsyms]" in leaf or leaf.startswith("[unknown] ([kernel"):
            net = any(re.search(NET, f) for f in frames)
            bucket = "kernel: network (loopback TCP, epoll, read/write)" if net else \
                "kernel: scheduling, wake-ups, page faults, other"
        else:
            bucket = next((n for n, rx in USER if re.search(rx, leaf)), "user: other")
        counts[bucket] += 1
    for name, n in counts.most_common():
        print(f"{100 * n / total:5.1f} %  {name}")
    print(f"({total} samples)")
    if a.top:
        print()
        for s, n in leaves.most_common(a.top):
            print(f"{100 * n / total:5.1f} %  {s[:140]}")


if __name__ == "__main__":
    main()
