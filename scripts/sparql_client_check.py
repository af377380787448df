#!/usr/bin/env python3
"""A real SPARQL client against a running `clew serve --demo`: SPARQLWrapper queries and
updates the endpoint, rdflib parses a CONSTRUCT as Turtle and queries through rdflib's own
SPARQLStore, and the next check over the JSON API reflects each update.

Usage: sparql_client_check.py http://127.0.0.1:8080   (exits non-zero on any mismatch)
"""
import json
import sys
import urllib.request

import rdflib
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import JSON, POST, TURTLE, SPARQLWrapper

BASE = sys.argv[1].rstrip("/")
ENDPOINT = BASE + "/sparql"
ID = "https://clew.dev/id/"
REL = "https://clew.dev/rel/"
TUPLES = "https://clew.dev/graph/tuples"


def check(user, relation, obj):
    req = urllib.request.Request(
        BASE + "/v1/check",
        data=json.dumps({"user": user, "relation": relation, "object": obj}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def expect(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def members(group):
    s = SPARQLWrapper(ENDPOINT)
    s.setQuery(f"SELECT ?u WHERE {{ GRAPH <{TUPLES}> {{ <{ID}group/{group}> <{REL}member> ?u }} }}")
    s.setReturnFormat(JSON)
    return sorted(b["u"]["value"] for b in s.query().convert()["results"]["bindings"])


def update(text):
    s = SPARQLWrapper(ENDPOINT)
    s.setMethod(POST)
    s.setQuery(text)
    return s.query().response.read()


before = check("user:zoe", "viewer", "document:roadmap")
expect(before["allowed"] is False, "zoe may not view the roadmap before the update")
expect(f"{ID}user/zoe" not in members("platform"), "SPARQLWrapper: zoe is not a platform member")

grant = f"INSERT DATA {{ GRAPH <{TUPLES}> {{ <{ID}group/platform> <{REL}member> <{ID}user/zoe> }} }}"
answer = json.loads(update(grant))
expect(answer["changed"] is True, f"SPARQLWrapper update applied at revision {answer['revision']}")
after = check("user:zoe", "viewer", "document:roadmap")
expect(after["allowed"] is True and after["revision"] >= answer["revision"],
       "the next check allows zoe (she is in platform, platform in engineering)")
expect(f"{ID}user/zoe" in members("platform"), "SPARQLWrapper: zoe is now a platform member")

# rdflib: a CONSTRUCT parsed as Turtle, and a query through rdflib's SPARQLStore.
s = SPARQLWrapper(ENDPOINT)
s.setQuery(f"CONSTRUCT {{ ?g <{REL}member> ?u }} WHERE {{ GRAPH <{TUPLES}> {{ ?g <{REL}member> ?u }} }}")
s.setReturnFormat(TURTLE)
g = rdflib.Graph()
g.parse(data=s.query().convert(), format="turtle")
expect((rdflib.URIRef(f"{ID}group/platform"), rdflib.URIRef(f"{REL}member"), rdflib.URIRef(f"{ID}user/zoe")) in g,
       f"rdflib parsed the CONSTRUCT ({len(g)} triples) and it holds zoe's membership")
store = rdflib.Graph(SPARQLStore(ENDPOINT))
n = len(list(store.query(f"SELECT ?s WHERE {{ ?s <{REL}member> ?u }}")))
expect(n >= 4, f"rdflib SPARQLStore query answered {n} rows")

# A model violation is refused whole, and nothing changes.
bad = f"INSERT DATA {{ <{ID}group/platform> <{REL}member> <{ID}user/yan> . <{ID}group/platform> <{REL}owner> <{ID}user/yan> }}"
try:
    update(bad)
    expect(False, "an update the model does not allow is refused")
except Exception as e:  # SPARQLWrapper raises on 4xx
    expect("owner" in str(e) or "400" in str(e) or "Bad" in type(e).__name__,
           f"an update the model does not allow is refused ({type(e).__name__})")
expect(check("user:yan", "member", "group:platform")["allowed"] is False, "and nothing of it was applied")

revoke = f"DELETE DATA {{ GRAPH <{TUPLES}> {{ <{ID}group/platform> <{REL}member> <{ID}user/zoe> }} }}"
update(revoke)
expect(check("user:zoe", "viewer", "document:roadmap")["allowed"] is False, "the revoke takes effect in the next check")
print("sparql client check: all passed")
