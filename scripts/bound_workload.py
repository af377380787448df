#!/usr/bin/env python3
"""Writes a bench workload (../shared/bench's tuples.jsonl) as a plain-vocabulary RDF graph and
the bindings that read it back, so that the same workload can be served from a graph with no
Clew-specific triple and compared with Clew's own tuples.

Every type `T` gets the IRI space `https://bench.example.org/T/` and every relation `T#r` the
property `https://bench.example.org/vocab#T_r` (in Clew's direction: `<object> p <user>`). A
userset user `t:id#rel` is written as the plain node of `t:id`: the bindings read it back as the
userset because the relation admits `t` only as `t#rel` (true of every relation of the bench
model). Wildcards and conditional tuples have no plain-vocabulary form and are written as Clew
tuples (a tuple file).

Usage: bound_workload.py WORKLOAD_DIR OUT_DIR
  writes OUT_DIR/bindings.ttl, OUT_DIR/graph.nt (N-Triples) and OUT_DIR/rest.jsonl
"""
import json
import os
import sys

BASE = "https://bench.example.org/"
VOCAB = BASE + "vocab#"


def node(obj):
    t, i = obj.split(":", 1)
    return f"<{BASE}{t}/{i}>"


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    types, relations = set(), set()
    plain, rest = 0, 0
    with open(os.path.join(src, "tuples.jsonl")) as f, \
            open(os.path.join(out, "graph.nt"), "w") as g, \
            open(os.path.join(out, "rest.jsonl"), "w") as r:
        for line in f:
            t = json.loads(line)
            user, rel, obj = t["user"], t["relation"], t["object"]
            if t.get("condition") or user.endswith(":*"):
                r.write(line)
                rest += 1
                continue
            ot = obj.split(":", 1)[0]
            u = user.split("#", 1)[0]
            types.update([ot, u.split(":", 1)[0]])
            relations.add((ot, rel))
            g.write(f"{node(obj)} <{VOCAB}{ot}_{rel}> {node(u)} .\n")
            plain += 1
    with open(os.path.join(out, "bindings.ttl"), "w") as b:
        b.write("@prefix clew: <https://clew.dev/ns#> .\n@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n")
        b.write(f"@prefix bv: <{VOCAB}> .\n@prefix bb: <{BASE}binding/> .\n\n")
        for t in sorted(types):
            b.write(f'bb:{t} a clew:TypeBinding ; clew:bindsType "{t}" ; '
                    f'clew:iriPrefix "{BASE}{t}/"^^xsd:anyURI .\n')
        for t, rel in sorted(relations):
            b.write(f'bb:{t}_{rel} a clew:RelationBinding ; clew:bindsType "{t}" ; '
                    f'clew:bindsRelation "{rel}" ; clew:toProperty bv:{t}_{rel} .\n')
    print(f"{plain} plain triples, {rest} tuples kept as Clew tuples, "
          f"{len(types)} type bindings, {len(relations)} relation bindings")


if __name__ == "__main__":
    main()
