#!/usr/bin/env python3
"""Runs the README's data steward walk-through as written, against a running `clew serve --demo`.

Every ```sh block of the section "A data steward's walk-through" is run by bash with
`localhost:8080` replaced by the server's address; the replies (JSON bodies, one after another)
must say what the README says they do.

Usage: readme_walkthrough.py http://127.0.0.1:8080 [README.md]   (exits non-zero on a mismatch)
"""
import json
import re
import subprocess
import sys

BASE = sys.argv[1].rstrip("/")
README = sys.argv[2] if len(sys.argv) > 2 else "README.md"
HOSTPORT = BASE.split("://", 1)[1]


def fail(what):
    print("FAIL:", what)
    sys.exit(1)


def blocks():
    text = open(README, encoding="utf-8").read()
    start = text.index("### A data steward's walk-through")
    end = text.index("\n## ", start)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def replies(script):
    out = subprocess.run(
        ["bash", "-e", "-c", script.replace("localhost:8080", HOSTPORT)],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        fail(f"the block exited {out.returncode}: {out.stderr}\n{script}")
    decoder = json.JSONDecoder()
    text, values = out.stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        values.append(value)
        text = text[end:].lstrip()
    return values


def expect(cond, what):
    if not cond:
        fail(what)
    print("ok:", what)


found = blocks()
expect(len(found) == 3, f"the walk-through has three command blocks ({len(found)})")

query, subjects = replies(found[0])
rows = query["results"]["bindings"]
expect(rows and all("who" in r and "team" in r for r in rows), f"the SPARQL query lists {len(rows)} granted members")
expect(len(subjects["subjects"]) == 16, "Clew's complete answer lists 16 people")

denied, updated, allowed = replies(found[1])
expect(denied["allowed"] is False and "deny_trace" in denied, "zack is denied first, with a deny trace")
expect(updated["changed"] is True, f"the SPARQL UPDATE made revision {updated['revision']}")
steps = [s for s in allowed["explanation"]["path"] if "tuple" in s]
last = steps[-1]
expect(allowed["allowed"] is True and allowed["revision"] >= updated["revision"], "the next check allows zack")
expect([s["tuple"] for s in steps] == ["dataset:churn-features#reader@group:data-eng#member",
                                      "group:data-eng#member@user:zack"],
       "the explanation's tuples are the ones the README names")
expect(last["triple"]["predicate"] == "http://www.w3.org/ns/org#memberOf" and "binding" in last,
       "the last step shows the inserted triple's original predicate and its binding")
expect(any(a["subject"] == "http://www.w3.org/ns/org#OrganizationalUnit" for a in last["axioms"]),
       "and the subclass axiom the README names")

before, deleted, after = replies(found[2])
expect(before["allowed"] is True, "olga may invoke the SQL console")
expect(deleted["changed"] is True, "the axiom is deleted")
expect(after["allowed"] is False, "without it she may not")
print("README walk-through: all passed")
