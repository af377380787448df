#!/usr/bin/env python3
"""Side-by-side table of one bench run: Clew (clew-bench) and, when present, the peers run on the same workload.

    python3 scripts/bench_compare.py RUN_DIR [--json OUT.json] [--spicedb-recorded results_spicedb.json]

RUN_DIR is what scripts/bench_workload.sh makes: answers_clew/{results_clew.json,timings.json,*.jsonl} and,
with --peers, results_spicedb.json + answers/ (SpiceDB) and results_oxigraph.json + answers_oxigraph/.
Ratios are "peer time / Clew time" (how many times faster Clew is), computed on the *same requests*: the
peers cut phases by their time budgets, so each ratio uses only the ids both answered. With --spicedb-recorded, a
results file from another run stands in when this run has no results_spicedb.json (the column is then labelled
as recorded; per-request ratios that need SpiceDB's answer files are left out). Standard library only.
"""
import json
import os
import statistics
import sys


def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_jsonl(p):
    try:
        with open(p) as f:
            return [json.loads(x) for x in f if x.strip()]
    except OSError:
        return []


def pct(values, p):
    """Nearest-rank percentile, as the peers' common.pct."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def fmt(x, unit=""):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    elif abs(x) >= 1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3f}"
    return s + unit


def ratio(peer, clew):
    if peer is None or clew is None or clew == 0:
        return None
    return peer / clew


def rfmt(r):
    if r is None:
        return "–"
    return f"{r:,.0f}×" if r >= 10 else f"{r:.1f}×"


def verdict(ok):
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    run = args[0]
    json_out = args[args.index("--json") + 1] if "--json" in args else None
    clew = load(os.path.join(run, "answers_clew", "results_clew.json"))
    tim = load(os.path.join(run, "answers_clew", "timings.json")) or {}
    sp = load(os.path.join(run, "results_spicedb.json"))
    sp_label = "SpiceDB"
    if sp is None and "--spicedb-recorded" in args:
        rec = args[args.index("--spicedb-recorded") + 1]
        sp = load(rec)
        if sp:
            sp_label = f"SpiceDB (recorded {sp.get('machine', {}).get('when', '?')}, not this session)"
    ox = load(os.path.join(run, "results_oxigraph.json"))
    if clew is None:
        print(f"no {run}/answers_clew/results_clew.json")
        sys.exit(2)
    wl = clew["workload"]
    rows = []   # (metric, clew, oxigraph, ratio_ox, spicedb, ratio_sp, target, verdict)
    summary = {}

    def row(metric, c, o=None, ro=None, s=None, rs=None, target="", ok=None):
        rows.append((metric, c, o, ro, s, rs, target, verdict(ok) if target else ""))

    # ------------------------------------------------------------------ load and memory
    ld, mem = clew.get("load", {}), clew.get("memory", {})
    row("load: tuples/s", fmt(ld.get("tuples_per_s")),
        fmt(ox["load"]["triples_per_s"]) if ox else None, rfmt(ratio(ld.get("tuples_per_s"), ox["load"]["triples_per_s"])) if ox else None,
        fmt(sp["load"]["tuples_per_s"]) if sp else None, rfmt(ratio(ld.get("tuples_per_s"), sp["load"]["tuples_per_s"])) if sp else None)
    row("load: total s (parse + write_tuples_bulk)", fmt(ld.get("total_s"), " s"),
        fmt(ox["load"]["convert_s"] + ox["load"]["bulk_load_s"], " s") if ox else None, None,
        fmt(sp["load"]["rpc_s"] + sp["load"]["proto_build_s"], " s") if sp else None, None,
        "scale 10: ≤ 60 s" if wl.get("scale") == 10 else "",
        (ld.get("total_s", 1e9) <= 60) if wl.get("scale") == 10 else None)
    io = mem.get("index_only", {})
    row("index memory: bytes/tuple (estimate)", fmt(mem.get("estimate_bytes_per_tuple")), target="≤ 64",
        ok=(mem.get("estimate_bytes_per_tuple") or 1e9) <= 64)
    row("index memory: bytes/tuple (RSS, index only)", fmt(io.get("rss_bytes_per_tuple")), target="≤ 64",
        ok=(io.get("rss_bytes_per_tuple") or 1e9) <= 64 if io else None)
    row("store + index: bytes/tuple (RSS)", fmt(mem.get("rss_store_and_index_bytes_per_tuple")))

    # ------------------------------------------------------------------ checks
    ck = clew.get("check")
    if ck:
        warm, cold = ck["warm"], ck["cold"]
        ox_p50 = ox["check"]["p50_us"] if ox else None
        ox_ps = ox["check"]["per_s"] if ox else None
        row("check p50 µs, cold pass (all 20k)", fmt(cold["p50_us"]), fmt(ox_p50), rfmt(ratio(ox_p50, cold["p50_us"])))
        row("check p50 µs, warm pass (all 20k)", fmt(warm["p50_us"]), fmt(ox_p50), rfmt(ratio(ox_p50, warm["p50_us"])),
            target="≤ 2 µs", ok=warm["p50_us"] <= 2)
        row("check p99 µs, warm", fmt(warm["p99_us"]), fmt(ox["check"]["p99_us"]) if ox else None,
            rfmt(ratio(ox["check"]["p99_us"], warm["p99_us"])) if ox else None)
        row("checks/s sequential, warm", fmt(warm["per_s"]), fmt(ox_ps), rfmt(ratio(warm["per_s"], ox_ps)),
            target="≥ 100× SPARQL", ok=(ratio(warm["per_s"], ox_ps) or 0) >= 100 if ox else None)
        if sp:
            n = sp["check"]["n"]
            sub = tim.get("check_warm_us", [])[:n]
            sub_c = tim.get("check_cold_us", [])[:n]
            c50, c50c = pct(sub, 50), pct(sub_c, 50)
            cps = len(sub) / (sum(sub) / 1e6) if sub else None
            rows.append((f"check p50 µs on SpiceDB's {n} checks (cold / warm)", f"{fmt(c50c)} / {fmt(c50)}", None, None,
                         fmt(sp["check"]["p50_us"]), rfmt(ratio(sp["check"]["p50_us"], c50)), "", ""))
            rows.append((f"checks/s on SpiceDB's {n} checks, warm", fmt(cps), None, None, fmt(sp["check"]["per_s"]),
                         rfmt(ratio(cps, sp["check"]["per_s"])), "", ""))
        summary["check"] = {"warm_p50_us": warm["p50_us"], "warm_per_s": warm["per_s"], "cold_p50_us": cold["p50_us"]}
    cc = clew.get("check_cached_subject")
    if cc:
        row(f"check p50 / p99 µs, subject's bitmap cached ({cc['n']} checks of the lookup subjects)",
            f"{fmt(cc['p50_us'])} / {fmt(cc['p99_us'])}", target="≤ 2 µs", ok=cc["p50_us"] <= 2)
    bk = clew.get("check_bulk")
    if bk:
        b = bk["second"]
        row("batch check (100/call) checks/s", f"{fmt(bk['first']['checks_per_s'])} / {fmt(b['checks_per_s'])} (1st/2nd)",
            None, None, fmt(sp["check_bulk"]["checks_per_s"]) if sp else None,
            rfmt(ratio(b["checks_per_s"], sp["check_bulk"]["checks_per_s"])) if sp else None)

    # ------------------------------------------------------------------ lookups (same ids)
    lk = clew.get("lookup")
    if lk:
        cold_ms = {int(k): v for k, v in tim.get("lookup_cold_ms", {}).items()}
        warm_ms = {int(k): v for k, v in tim.get("lookup_warm_ms", {}).items()}
        row("lookup ms p50 / p95 / max, cold", f"{fmt(lk['cold']['p50_ms'])} / {fmt(lk['cold']['p95_ms'])} / {fmt(lk['cold']['max_ms'])}",
            f"{fmt(ox['lookup']['p50_ms'])} / {fmt(ox['lookup']['p95_ms'])} / {fmt(ox['lookup']['max_ms'])}" if ox else None, None,
            f"{fmt(sp['lookup_resources']['p50_ms'])} / {fmt(sp['lookup_resources']['p95_ms'])} / {fmt(sp['lookup_resources']['max_ms'])}" if sp else None, None)
        if ox or sp:
            o_p50 = ox["lookup"]["p50_ms"] if ox else None
            s_p50 = sp["lookup_resources"]["p50_ms"] if sp else None
            row("lookup p50 ms, cold (each engine over the lookups it answered)", fmt(lk["cold"]["p50_ms"]),
                f"{fmt(o_p50)} (n={ox['lookup']['requests']})" if ox else None, rfmt(ratio(o_p50, lk["cold"]["p50_ms"])),
                f"{fmt(s_p50)} (n={sp['lookup_resources']['ok']})" if sp else None, rfmt(ratio(s_p50, lk["cold"]["p50_ms"])))
        row("lookup ms p50 / p95 / max, warm (cached bitmap)", f"{fmt(lk['warm']['p50_ms'])} / {fmt(lk['warm']['p95_ms'])} / {fmt(lk['warm']['max_ms'])}")
        h = lk["cold"].get("heaviest", {})
        hid = h.get("id")
        peer_lk = {}
        for name, d in (("oxigraph", "answers_oxigraph"), ("spicedb", "answers")):
            peer_lk[name] = {r["id"]: r for r in load_jsonl(os.path.join(run, d, "lookups.jsonl")) if "seconds" in r and "error" not in r}

        def heavy(name):
            """The peer's time on the heaviest lookup; if the peer did not reach it, on the heaviest it did."""
            rs = peer_lk.get(name) or {}
            if not rs:
                return None, None
            if hid in rs:
                return hid, rs[hid]["seconds"] * 1e3
            best = max(rs.values(), key=lambda r: r["count"])
            return best["id"], best["seconds"] * 1e3
        hc, hw = cold_ms.get(hid), warm_ms.get(hid)
        oid, oms = heavy("oxigraph")
        sid, sms = heavy("spicedb")
        row(f"heaviest-user lookup ms (id {hid}, {h.get('count')} objects), cold", fmt(hc),
            fmt(oms) + ("" if oid == hid else f" (id {oid})") if oms else None, rfmt(ratio(oms, cold_ms.get(oid))),
            fmt(sms) + ("" if sid == hid else f" (id {sid})") if sms else None, rfmt(ratio(sms, cold_ms.get(sid))),
            "≤ 5 ms, ≥ 100× both", (hc or 1e9) <= 5 and all((ratio(p, cold_ms.get(i)) or 0) >= 100
                                                              for i, p in ((oid, oms), (sid, sms)) if p))
        row("heaviest-user lookup ms, warm", fmt(hw), fmt(oms) if oms else None, rfmt(ratio(oms, warm_ms.get(oid))),
            fmt(sms) if sms else None, rfmt(ratio(sms, warm_ms.get(sid))), "≤ 5 ms", (hw or 1e9) <= 5)
        for name in ("oxigraph", "spicedb"):
            rs = peer_lk.get(name) or {}
            ids = [i for i in rs if i in cold_ms]
            if ids:
                tp = sum(rs[i]["seconds"] for i in ids)
                tc = sum(cold_ms[i] for i in ids) / 1e3
                tw = sum(warm_ms.get(i, 0) for i in ids) / 1e3
                rows.append((f"lookup total s on the {len(ids)} lookups {name} answered (cold / warm)",
                             f"{fmt(tc)} / {fmt(tw)}", fmt(tp) if name == "oxigraph" else None,
                             rfmt(ratio(tp, tc)) if name == "oxigraph" else None,
                             fmt(tp) if name == "spicedb" else None, rfmt(ratio(tp, tc)) if name == "spicedb" else None,
                             "", ""))
        bd = lk.get("heaviest_breakdown")
        if bd:
            rows.append(("heaviest lookup breakdown: engine eval / ids→ObjectRef ms",
                         f"{fmt(bd['engine_lookup_ms'])} / {fmt(bd['materialise_objectrefs_ms'])}", None, None, None, None, "", ""))
        summary["lookup"] = {"heaviest_cold_ms": hc, "heaviest_warm_ms": hw}

    # ------------------------------------------------------------------ filters (same ids)
    fl = clew.get("filter")
    if fl:
        cold_us = {int(k): v for k, v in tim.get("filter_cold_us", {}).items()}
        warm_us = {int(k): v for k, v in tim.get("filter_warm_us", {}).items()}
        peer_f = {}
        for name, d in (("oxigraph", "answers_oxigraph"), ("spicedb", "answers")):
            peer_f[name] = {r["id"]: r["seconds"] * 1e6 for r in load_jsonl(os.path.join(run, d, "filters.jsonl"))
                            if "seconds" in r and "error" not in r}

        def same(name, mine):
            rs = peer_f.get(name) or {}
            ids = [i for i in rs if i in mine]
            if not ids:
                return None, None, 0
            return pct([rs[i] for i in ids], 50), pct([mine[i] for i in ids], 50), len(ids)
        o50, oc50, on = same("oxigraph", cold_us)
        s50, sc50, sn = same("spicedb", cold_us)
        _, ow50, _ = same("oxigraph", warm_us)
        _, sw50, _ = same("spicedb", warm_us)
        if s50 is None and sp and sp.get("filter_bulk", {}).get("p50_ms"):
            # recorded results: SpiceDB's p50 over its first requests, against Clew's over the same ids
            sn = sp["filter_bulk"]["requests"]
            s50 = sp["filter_bulk"]["p50_ms"] * 1e3
            sc50 = pct([cold_us[i] for i in sorted(cold_us)[:sn]], 50)
            sw50 = pct([warm_us[i] for i in sorted(warm_us)[:sn]], 50)
        c, w = fl["cold"], fl["warm"]
        row(f"filter 1,000 candidates µs p50 / p95, cold (strategies {c.get('strategies')})",
            f"{fmt(c['p50_us'])} / {fmt(c['p95_us'])}",
            f"{fmt(o50)} (n={on})" if o50 else None, rfmt(ratio(o50, oc50)),
            f"{fmt(s50)} (n={sn})" if s50 else None, rfmt(ratio(s50, sc50)),
            "≤ 100 µs, ≥ 100× both", c["p50_us"] <= 100 and all((r or 0) >= 100 for r in
                                                               (ratio(o50, oc50) if o50 else 1e9, ratio(s50, sc50) if s50 else 1e9)))
        row(f"filter µs p50 / p95, warm (strategies {w.get('strategies')})", f"{fmt(w['p50_us'])} / {fmt(w['p95_us'])}",
            fmt(o50) if o50 else None, rfmt(ratio(o50, ow50)), fmt(s50) if s50 else None, rfmt(ratio(s50, sw50)),
            "≤ 100 µs", w["p50_us"] <= 100)
        summary["filter"] = {"cold_p50_us": c["p50_us"], "warm_p50_us": w["p50_us"]}

    # ------------------------------------------------------------------ subjects
    sj = clew.get("subjects")
    if sj:
        ss = sp.get("lookup_subjects") if sp else None
        row("who-can-read (subjects) ms p50 / p95", f"{fmt(sj['p50_ms'])} / {fmt(sj['p95_ms'])}", None, None,
            f"{fmt(ss['p50_ms'])} / {fmt(ss['p95_ms'])}" if ss else None, rfmt(ratio(ss["p50_ms"], sj["p50_ms"])) if ss else None)

    # ------------------------------------------------------------------ writes
    wr = clew.get("write")
    if wr:
        g, r = wr["grant"]["write_then_check"], wr["revoke"]["write_then_check"]
        row(f"write 1 tuple → next check sees it, µs p50 / p99 ({wr['rounds']} grants, {wr['tuples_in_store']:,} tuples)",
            f"grant {fmt(g['p50_us'])} / {fmt(g['p99_us'])}; revoke {fmt(r['p50_us'])} / {fmt(r['p99_us'])}",
            "not measured", None, "not measured", None, "≤ 1 ms (p50 / p99)",
            None)
        rows[-1] = rows[-1][:7] + (f"p50 {verdict(max(g['p50_us'], r['p50_us']) <= 1000)}, "
                                   f"p99 {verdict(max(g['p99_us'], r['p99_us']) <= 1000)}; over 1 ms: "
                                   f"{wr['grant'].get('over_1ms')} grants, {wr['revoke'].get('over_1ms')} revokes",)
        if "first_100_write_p50_us" in wr["grant"]:
            row("write alone µs p50: first 100 / last 100 grants after load",
                f"{fmt(wr['grant']['first_100_write_p50_us'])} / {fmt(wr['grant']['last_100_write_p50_us'])}")
        tg = wr.get("same_tuple_toggled")
        if tg:
            row(f"one tuple granted+revoked {tg['rounds']}× (2 writes + 2 checks), µs p50: first 100 / last 100",
                f"{fmt(tg['first_100']['p50_us'])} / {fmt(tg['last_100']['p50_us'])}")
        la = wr.get("lookup_after_write", {})
        if la.get("grant_then_lookup_ms", {}).get("n"):
            row("write → next lookup of a cached heavy subject, ms p50 / max",
                f"{fmt(la['grant_then_lookup_ms']['p50_ms'])} / {fmt(la['grant_then_lookup_ms']['max_ms'])}")

    # ------------------------------------------------------------------ agreement
    ag = clew.get("agreement_with_answers_ref", {})
    parts = [f"{k} {v['agree']}/{v['compared']}" for k, v in ag.items()]
    ex = (sj or {}).get("excluded_by_checks")
    if ex:
        parts.append(f"wildcard exclusions (bench, by checks) {ex['agree']}/{ex['compared']}")
    ox_ag = ox.get("agreement_with_generator_ref", {}) if ox else {}
    sp_ag = sp.get("agreement_with_generator_ref", {}) if sp else {}
    row("agreement with answers_ref", "; ".join(parts),
        "; ".join(f"{k} {v['agree']}/{v['compared']}" for k, v in ox_ag.items()) or None, None,
        "; ".join(f"{k} {v['agree']}/{v['compared']}" for k, v in sp_ag.items()) or None, None)
    # Clew vs SpiceDB's own answers
    if sp:
        mine = {k: {r["id"]: r for r in load_jsonl(os.path.join(run, "answers_clew", f"{k}.jsonl"))}
                for k in ("checks", "lookups", "filters", "subjects")}
        parts = []
        for k, key in (("checks", "allowed"), ("lookups", "objects"), ("filters", "allowed"), ("subjects", None)):
            theirs = [r for r in load_jsonl(os.path.join(run, "answers", f"{k}.jsonl")) if "error" not in r]
            n = agree = 0
            for r in theirs:
                m = mine[k].get(r["id"])
                if m is None or "error" in m:
                    continue
                n += 1
                if key is None:
                    same = m.get("wildcard") == r.get("wildcard") and (m.get("wildcard") or m.get("users") == r.get("users"))
                else:
                    same = m.get(key) == r.get(key)
                agree += same
            parts.append(f"{k} {agree}/{n}")
        rows.append(("Clew agreement with SpiceDB's answers (what SpiceDB answered)", "; ".join(parts), None, None, None, None,
                     "", ""))

    title = f"{wl.get('shape')}-{wl.get('scale')}: {wl.get('tuples'):,} tuples, max depth {clew.get('max_depth')}"
    print(f"### {title}\n")
    print(f"| metric | Clew | Oxigraph-SPARQL | × | {sp_label} | × | target | |")
    print("|---|---|---|---:|---|---:|---|---|")
    for r in rows:
        print("| " + " | ".join("" if x is None else str(x) for x in r) + " |")
    print()
    notes = []
    if sp:
        notes += [f"SpiceDB: {n}" for n in sp.get("notes", [])]
    if ox:
        notes += [f"Oxigraph: {n}" for n in ox.get("notes", [])]
    notes += [f"Clew: {n}" for n in clew.get("notes", [])]
    if clew.get("failures"):
        notes += [f"Clew FAILURE: {n}" for n in clew["failures"]]
    notes.append(f"Clew: load average {clew.get('loadavg_start')} at start, {clew.get('loadavg_end')} at end; "
                 f"clock overhead {clew.get('clock_overhead_ns')} ns per timing; peak RSS "
                 f"{(clew.get('peak_rss_bytes') or 0) / 2**20:,.0f} MiB; wall {clew.get('wall_s')} s")
    try:
        with open(os.path.join(run, "session.txt")) as f:
            notes += [f"session: {x.strip()}" for x in f if x.strip()]
    except OSError:
        pass
    for n in notes:
        print(f"- {n}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"rows": rows, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
