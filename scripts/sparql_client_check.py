#!/usr/bin/env python3
"""A real SPARQL client against a running `clew serve --demo` (the enterprise example, in plain
ORG/FOAF/DCAT/PROV read through bindings): the README's steward walk-through. SPARQLWrapper
queries and updates the endpoint, rdflib parses a CONSTRUCT as Turtle and queries through
rdflib's own SPARQLStore, and the next check over the JSON API reflects each update, its
explanation showing the stored triple and the axiom it relied on.

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
PERSON = "https://id.example.com/person/"
UNIT = "https://id.example.com/org/"
ORG = "http://www.w3.org/ns/org#"
VOCAB_GRAPH = "https://example.com/graph/vocabulary"
PREFIXES = """PREFIX org: <http://www.w3.org/ns/org#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
PREFIX ex: <https://ontology.example.com/ent#>
"""


def post(path, body):
    req = urllib.request.Request(
        BASE + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def check(user, relation, obj, explain=False):
    return post("/v1/check", {"user": user, "relation": relation, "object": obj, "explain": explain})


def expect(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def members(unit):
    s = SPARQLWrapper(ENDPOINT)
    s.setQuery(f"{PREFIXES}SELECT ?p WHERE {{ ?p org:memberOf <{UNIT}{unit}> }}")
    s.setReturnFormat(JSON)
    return sorted(b["p"]["value"] for b in s.query().convert()["results"]["bindings"])


def update(text):
    s = SPARQLWrapper(ENDPOINT)
    s.setMethod(POST)
    s.setQuery(PREFIXES + text)
    return s.query().response.read()


# The README's steward walk-through, over the enterprise demo (plain ORG/FOAF/DCAT/PROV).
readers = post("/v1/subjects", {"object": "dataset:churn-features", "relation": "reader", "subject_type": "user"})
expect(len(readers["subjects"]) == 16 and "user:zack" not in readers["subjects"],
       f"16 people read the churn features, zack is not one ({len(readers['subjects'])})")
before = check("user:zack", "reader", "dataset:churn-features")
expect(before["allowed"] is False, "zack may not read the churn features before the update")
expect(f"{PERSON}zack" not in members("data-eng"), "SPARQLWrapper: zack is not in data engineering")

grant = f"INSERT DATA {{ <{PERSON}zack> org:memberOf <{UNIT}data-eng> }}"
answer = json.loads(update(grant))
expect(answer["changed"] is True, f"SPARQLWrapper update applied at revision {answer['revision']}")
after = check("user:zack", "reader", "dataset:churn-features", explain=True)
expect(after["allowed"] is True and after["revision"] >= answer["revision"],
       "the next check allows zack (data engineering is granted read)")
steps = [s for s in after["explanation"]["path"] if "tuple" in s]
last = steps[-1]
expect(last["tuple"] == "group:data-eng#member@user:zack"
       and last["triple"]["predicate"] == ORG + "memberOf"
       and last["triple"]["subject"] == PERSON + "zack",
       "the explanation shows the inserted triple with its original predicate (org:memberOf)")
expect(any(a["predicate"].endswith("#subClassOf") for a in last.get("axioms", [])),
       "and names the subclass axiom that makes data engineering a group")
expect(f"{PERSON}zack" in members("data-eng"), "SPARQLWrapper: zack is now in data engineering")

# rdflib: a CONSTRUCT parsed as Turtle, and a query through rdflib's SPARQLStore.
s = SPARQLWrapper(ENDPOINT)
s.setQuery(f"{PREFIXES}CONSTRUCT {{ ?p org:memberOf ?u }} WHERE {{ ?p org:memberOf ?u }}")
s.setReturnFormat(TURTLE)
g = rdflib.Graph()
g.parse(data=s.query().convert(), format="turtle")
expect((rdflib.URIRef(f"{PERSON}zack"), rdflib.URIRef(ORG + "memberOf"), rdflib.URIRef(f"{UNIT}data-eng")) in g,
       f"rdflib parsed the CONSTRUCT ({len(g)} triples) and it holds zack's membership")
store = rdflib.Graph(SPARQLStore(ENDPOINT))
n = len(list(store.query(f"SELECT ?s WHERE {{ ?s <{ORG}memberOf> ?u }}")))
expect(n >= 40, f"rdflib SPARQLStore query answered {n} rows")

# A Clew triple the model does not allow is refused whole, and nothing changes.
bad = ("INSERT DATA { <https://id.example.com/person/yan> org:memberOf <https://id.example.com/org/data-eng> . "
       "<https://clew.dev/id/group/data-eng> <https://clew.dev/rel/owner> <https://clew.dev/id/user/yan> }")
try:
    update(bad)
    expect(False, "an update the model does not allow is refused")
except Exception as e:  # SPARQLWrapper raises on 4xx
    expect("owner" in str(e) or "400" in str(e) or "Bad" in type(e).__name__,
           f"an update the model does not allow is refused ({type(e).__name__})")
expect(f"{PERSON}yan" not in members("data-eng"), "and nothing of it was applied")

# Axioms are data: without ex:Contractor rdfs:subClassOf foaf:Person, contractors are not users.
expect(check("user:olga", "can_invoke", "tool:sql-console")["allowed"] is True, "olga (a contractor) may use the SQL console")
update(f"DELETE DATA {{ GRAPH <{VOCAB_GRAPH}> {{ ex:Contractor rdfs:subClassOf foaf:Person }} }}")
expect(check("user:olga", "can_invoke", "tool:sql-console")["allowed"] is False,
       "after deleting the subclass axiom she may not")
update(f"INSERT DATA {{ GRAPH <{VOCAB_GRAPH}> {{ ex:Contractor rdfs:subClassOf foaf:Person }} }}")
expect(check("user:olga", "can_invoke", "tool:sql-console")["allowed"] is True, "and with it back she may again")

revoke = f"DELETE DATA {{ <{PERSON}zack> org:memberOf <{UNIT}data-eng> }}"
update(revoke)
expect(check("user:zack", "reader", "dataset:churn-features")["allowed"] is False,
       "the revoke takes effect in the next check")
print("sparql client check: all passed")
