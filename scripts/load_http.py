#!/usr/bin/env python3
"""Drive a running `clew serve` with a bench workload (../shared/bench/gen_workload.py), standard library only.

    load_http.py load   --url http://127.0.0.1:8099 --workload DIR [--batch 100]
        POST /v1/model with DIR/model.fga, then every tuple of DIR/tuples.jsonl through /v1/tuples/write in
        batches (100 is the server's limit per write, as in OpenFGA); prints one JSON line with the timings.
    load_http.py bodies --workload DIR --out BODIES [--batch-size 100]
        Writes the request bodies that the wrk scripts of scripts/load/ rotate through, one JSON body a line:
        check.jsonl (one per check), batch_check.jsonl (the checks in order, BATCH-SIZE per call),
        filter.jsonl (one per filter request, its 1,000 candidates), lookup.jsonl (one per lookup, whole answer).
    load_http.py verify --url URL --workload DIR [--checks N]
        Sends the workload's own requests once and compares every answer with DIR/answers_ref/: every check in
        batches, the first N checks (default 1000) one by one through /v1/check, every filter and every lookup.
        Exit status 1 on any disagreement or non-200 response. Prints one JSON line, with how many single checks,
        filters and lookups the server answered from its cached subject bitmaps (`cache_hit`).
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse
from pathlib import Path


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Client:
    """One keep-alive HTTP/1.1 connection (what a real client would use)."""

    def __init__(self, url, timeout=120):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def post(self, path, body):
        data = json.dumps(body, separators=(",", ":")).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body=data, headers={"content-type": "application/json"})
                r = self.conn.getresponse()
                text = r.read()
                return r.status, json.loads(text) if text else None
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def check_body(c):
    return {"user": c["user"], "relation": c["relation"], "object": c["object"]}


def filter_body(f):
    return {"user": f["user"], "relation": f["relation"], "object_type": "document", "candidates": f["objects"]}


def lookup_body(q):
    return {"user": q["user"], "relation": q["relation"], "object_type": q["type"]}


def cmd_load(a):
    w = Path(a.workload)
    cl = Client(a.url)
    t0 = time.perf_counter()
    st, r = cl.post("/v1/model", {"dsl": (w / "model.fga").read_text()})
    if st != 200:
        sys.exit(f"POST /v1/model: {st} {r}")
    t_model = time.perf_counter() - t0
    n, batches, send_s = 0, 0, 0.0
    batch = []

    def flush():
        nonlocal n, batches, send_s
        t = time.perf_counter()
        st, r = cl.post("/v1/tuples/write", {"writes": batch})
        send_s += time.perf_counter() - t
        if st != 200 or r.get("written") != len(batch):
            sys.exit(f"POST /v1/tuples/write (batch {batches}): {st} {json.dumps(r)[:500]}")
        n += len(batch)
        batches += 1
        batch.clear()
        return r["revision"]

    revision = None
    t1 = time.perf_counter()
    with open(w / "tuples.jsonl", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            batch.append({"user": t["user"], "relation": t["relation"], "object": t["object"]})
            if len(batch) >= a.batch:
                revision = flush()
    if batch:
        revision = flush()
    total = time.perf_counter() - t1
    print(json.dumps({"model_s": round(t_model, 3), "tuples": n, "batches": batches, "batch": a.batch,
                      "tuples_s": round(total, 2), "server_s": round(send_s, 2),
                      "tuples_per_s": round(n / total), "revision": revision}))


def cmd_bodies(a):
    w, out = Path(a.workload), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    checks = read_jsonl(w / "checks.jsonl")
    dump = lambda b: json.dumps(b, separators=(",", ":"))
    with open(out / "check.jsonl", "w") as f:
        for c in checks:
            f.write(dump(check_body(c)) + "\n")
    with open(out / "batch_check.jsonl", "w") as f:
        for i in range(0, len(checks) - a.batch_size + 1, a.batch_size):
            f.write(dump({"checks": [check_body(c) for c in checks[i:i + a.batch_size]]}) + "\n")
    with open(out / "filter.jsonl", "w") as f:
        for q in read_jsonl(w / "filters.jsonl"):
            f.write(dump(filter_body(q)) + "\n")
    with open(out / "lookup.jsonl", "w") as f:
        for q in read_jsonl(w / "lookups.jsonl"):
            f.write(dump(lookup_body(q)) + "\n")
    print(json.dumps({"out": str(out), "checks": len(checks), "batch_size": a.batch_size}))


def cmd_verify(a):
    w = Path(a.workload)
    cl = Client(a.url)
    bad = {"status": 0, "check": 0, "batch_check": 0, "filter": 0, "lookup": 0}
    examples = []

    def fail(kind, what):
        bad[kind] += 1
        if len(examples) < 10:
            examples.append(f"{kind}: {what}")

    checks = read_jsonl(w / "checks.jsonl")
    ref = {r["id"]: r["allowed"] for r in read_jsonl(w / "answers_ref" / "checks.jsonl")}
    n_batch = 0
    for i in range(0, len(checks), 100):
        part = checks[i:i + 100]
        st, r = cl.post("/v1/batch-check", {"checks": [check_body(c) for c in part]})
        if st != 200:
            fail("status", f"batch-check {st} {json.dumps(r)[:300]}")
            continue
        for c, res in zip(part, r["results"]):
            n_batch += 1
            if res.get("allowed") != ref[c["id"]]:
                fail("batch_check", f"check {c['id']}: {res} vs allowed={ref[c['id']]}")
    n_single, hits = 0, {"check": 0, "filter": 0, "lookup": 0}
    for c in checks[:a.checks]:
        st, r = cl.post("/v1/check", check_body(c))
        n_single += 1
        if st != 200:
            fail("status", f"check {st} {json.dumps(r)[:300]}")
        elif r.get("allowed") != ref[c["id"]]:
            fail("check", f"check {c['id']}: {r} vs allowed={ref[c['id']]}")
        else:
            hits["check"] += bool(r.get("cache_hit"))
    fref = {r["id"]: r for r in read_jsonl(w / "answers_ref" / "filters.jsonl")}
    n_filter = 0
    for q in read_jsonl(w / "filters.jsonl"):
        st, r = cl.post("/v1/filter", filter_body(q))
        n_filter += 1
        if st != 200:
            fail("status", f"filter {st} {json.dumps(r)[:300]}")
            continue
        hits["filter"] += bool(r.get("cache_hit"))
        got = sorted(x["object"] for x in r["allowed"])
        if got != fref[q["id"]]["allowed"]:
            fail("filter", f"filter {q['id']}: {len(got)} allowed vs {fref[q['id']]['count']}")
    lref = {r["id"]: r for r in read_jsonl(w / "answers_ref" / "lookups.jsonl")}
    n_lookup, objects = 0, 0
    for q in read_jsonl(w / "lookups.jsonl"):
        st, r = cl.post("/v1/lookup", lookup_body(q))
        n_lookup += 1
        if st != 200:
            fail("status", f"lookup {st} {json.dumps(r)[:300]}")
            continue
        hits["lookup"] += bool(r.get("cache_hit"))
        got = sorted(set(r["objects"]))
        objects += len(got)
        if r.get("truncated") or got != lref[q["id"]]["objects"]:
            fail("lookup", f"lookup {q['id']}: {len(got)} objects vs {lref[q['id']]['count']}")
    out = {"batch_checks": n_batch, "checks": n_single, "filters": n_filter, "lookups": n_lookup,
           "lookup_objects": objects, "cache_hits": hits, "disagreements": bad, "examples": examples}
    print(json.dumps(out))
    sys.exit(1 if any(bad.values()) else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("load")
    s.add_argument("--url", required=True)
    s.add_argument("--workload", required=True)
    s.add_argument("--batch", type=int, default=100)
    s = sub.add_parser("bodies")
    s.add_argument("--workload", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--batch-size", type=int, default=100)
    s = sub.add_parser("verify")
    s.add_argument("--url", required=True)
    s.add_argument("--workload", required=True)
    s.add_argument("--checks", type=int, default=1000)
    a = p.parse_args()
    {"load": cmd_load, "bodies": cmd_bodies, "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    main()
